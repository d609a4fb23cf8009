"""`seamline demo`: mock CRM, billing, provisioning and email APIs with seeded failures, a demo config with a
contract per handoff, and a workflow driver that runs order runs through Seamline."""

from seamline.demo.config import demo_config, demo_config_yaml
from seamline.demo.driver import DemoSummary, RunResult, run_demo
from seamline.demo.mocks import FAULT_KINDS, MockFleet, plan_fault, start_mocks

__all__ = [
    "FAULT_KINDS",
    "DemoSummary",
    "MockFleet",
    "RunResult",
    "demo_config",
    "demo_config_yaml",
    "plan_fault",
    "run_demo",
    "start_mocks",
]
