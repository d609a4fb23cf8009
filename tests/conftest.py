"""Shared fixtures: real upstream apps and a real Seamline on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# In-process sidecars share this process's one chdb directory with the tests that read it back, so their embedded
# engine is a thread here; tests/integration/test_record_engine_process.py and every `seamline serve` subprocess (which
# drops SEAMLINE_* variables) run the default, the engine process.
os.environ.setdefault("SEAMLINE_STORAGE__EMBEDDED_ENGINE", "thread")

from hypothesis import HealthCheck, settings
from support.upstream import Upstream

from seamline.config.models import Config

# Property tests (hypothesis): a modest number of examples and a deadline each, so the default suite stays fast and a
# parser that hangs fails. "ci" (HYPOTHESIS_PROFILE=ci, set by .ci/run) derandomizes: a failure there reproduces
# with the same examples anywhere. `HYPOTHESIS_PROFILE=deep` runs many more, by hand.
_PROFILE = {"deadline": 500, "suppress_health_check": [HealthCheck.too_slow], "print_blob": True}
settings.register_profile("default", max_examples=60, **_PROFILE)
settings.register_profile("ci", max_examples=60, derandomize=True, database=None, **_PROFILE)
settings.register_profile("deep", max_examples=5000, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

pytest_plugins = ["support.redis_server"]  # the `redis_server` fixture: a real redis-server on 127.0.0.1


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = await Upstream().start()
    yield up
    await up.stop()


def proxy_config(upstreams: dict[str, str], handoffs: dict[str, Any] | None = None, **extra: Any) -> Config:
    """A Config for tests: loopback upstreams allowed, ephemeral ports, recording off unless given."""
    data: dict[str, Any] = {
        "upstreams": {
            n: {"base_url": u, "allow_private": True, "timeouts": {"connect": 2, "read": 5, "total": 5}}
            for n, u in upstreams.items()
        },
        "handoffs": handoffs or {},
        "server": {"port": 0, "admin_port": 0},
        "storage": {"enabled": False},
    }
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return Config(**data)


@pytest.fixture
async def make_sidecar() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    from seamline.sidecar import Sidecar

    started: list[Sidecar] = []

    async def _make(config: Config, **kwargs: Any) -> Sidecar:
        sc = Sidecar(config, **kwargs)
        await sc.start()
        started.append(sc)
        return sc

    yield _make
    for sc in started:
        await sc.stop()
