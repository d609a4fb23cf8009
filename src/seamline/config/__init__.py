"""Configuration: the pydantic models (`models`), loading and error phrasing (`loader`), the generated reference
(`reference`). The names most callers need are re-exported here."""

from seamline.config.loader import ConfigError, format_validation_error, load_config
from seamline.config.models import Capture, Config, Contract, Handoff, Server, Storage, Telemetry, Timeouts, Upstream

__all__ = [
    "Capture", "Config", "ConfigError", "Contract", "Handoff", "Server", "Storage", "Telemetry", "Timeouts", "Upstream",
    "format_validation_error", "load_config",
]  # fmt: skip
