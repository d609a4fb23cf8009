"""`server.workers` > 1 refuses the guards whose state would be split across workers, naming file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from seamline.config.loader import ConfigError, load_config
from seamline.config.models import Config
from seamline.config.workers import in_process_guards

UP = {"pay": {"base_url": "https://pay.example"}}


def config(**kw: object) -> Config:
    return Config(upstreams=UP, **kw)  # type: ignore[arg-type]


def test_one_worker_is_never_refused() -> None:
    cfg = config(handoffs={"charge": {"upstream": "pay", "match": "POST /c", "safety": "never_repeat"}})
    assert cfg.server.workers == 1


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"handoffs": {"charge": {"upstream": "pay", "match": "POST /c", "safety": "never_repeat"}}}, "handoffs.charge.dedup"),
        ({"handoffs": {"c": {"upstream": "pay", "match": "POST /c", "safety": "safe_once"}}}, "handoffs.c.dedup"),
        ({"handoffs": {"c": {"upstream": "pay", "match": "GET /c", "dedup": {"window": "1h"}}}}, "handoffs.c.dedup"),
        ({"handoffs": {"c": {"upstream": "pay", "match": "GET /c", "loops": {"block": True}}}}, "handoffs.c.loops.block"),
        ({"loops": {"block": True}}, "loops.block"),
        ({"upstreams": {"pay": {"base_url": "https://pay.example", "rate_limit": {"rps": 5}}}}, "upstreams.pay.rate_limit"),
    ],
)
def test_each_in_process_guard_is_named_in_the_refusal(tmp_path: Path, extra: dict, named: str) -> None:
    import json

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"upstreams": UP, "server": {"workers": 3}, **extra}))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    text = str(e.value)
    assert text.startswith(f"{path}: invalid configuration")
    assert "server.workers: 3 workers" in text and named in text
    assert "set redis_url" in text and "--workers 1" in text


def test_redis_url_shares_the_state_so_workers_are_allowed() -> None:
    handoffs = {"charge": {"upstream": "pay", "match": "POST /c", "safety": "never_repeat"}}
    cfg = config(handoffs=handoffs, server={"workers": 2}, redis_url="redis://127.0.0.1:6379/0")
    assert cfg.server.workers == 2 and in_process_guards(cfg) == []


def test_what_is_allowed_without_redis() -> None:
    # Flag-only loop detection (the default), a guard turned off, the circuit breaker (per worker by design).
    handoffs = {"charge": {"upstream": "pay", "match": "POST /c", "safety": "never_repeat", "dedup": False}}
    cfg = config(handoffs=handoffs, server={"workers": 2})
    assert in_process_guards(cfg) == []


def test_the_cli_flag_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("upstreams: {pay: {base_url: 'https://pay.example'}}\nserver: {workers: 4}\n")
    assert load_config(path).server.workers == 4
    assert load_config(path, overrides={"server": {"workers": 1}}).server.workers == 1
    with pytest.raises(ConfigError, match=r"server\.workers: .*greater than or equal to 1"):
        load_config(path, overrides={"server": {"workers": 0}})
