"""The guards' config: durations, defaults by the issue's interface, and errors that name the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from seamline.config.guards import Dedup, Retry, parse_duration
from seamline.config.loader import ConfigError, load_config
from seamline.config.models import Config


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("2s", 2.0), ("10m", 600.0), ("24h", 86400.0), ("1d", 86400.0), ("1.5s", 1.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2", "2 weeks", "-1s", "s", "1e3s", ""])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValidationError, match=r"write e\.g\. 250ms, 2s"):
        Retry(deadline=text)


def test_defaults_are_the_issue_interface() -> None:
    cfg = Config(
        upstreams={"billing": {"base_url": "https://billing.example"}},
        handoffs={"billing.charge": {"upstream": "billing", "match": "POST /charges", "safety": "never_repeat"}},
    )
    up, h = cfg.upstreams["billing"], cfg.handoffs["billing.charge"]
    assert up.retry == Retry() and up.retry.attempts == 3 and up.retry.deadline == 10.0
    assert up.retry.on == ["connect", 502, 503, 504, 429] and up.retry.max_retry_after == 30.0
    assert (
        up.retry.enabled
        and up.circuit_breaker.enabled
        and (up.circuit_breaker.failure_rate, up.circuit_breaker.window) == (0.5, 60.0)
    )
    assert (up.circuit_breaker.min_calls, up.circuit_breaker.consecutive_failures) == (20, 5)
    assert (up.circuit_breaker.open_for, up.circuit_breaker.half_open_probes) == (30.0, 3)
    assert up.rate_limit is None
    assert h.dedup is None and h.retry is None and h.loops is None  # None: the default for its safety / upstream
    assert (cfg.loops.max_calls_per_run, cfg.loops.window, cfg.loops.block) == (20, 600.0, False)
    assert Dedup().window == 86400.0 and Dedup().max_response_bytes == 1024 * 1024 and not Dedup().require_key
    assert cfg.redis_url is None


def test_false_turns_a_default_guard_off() -> None:
    cfg = Config(
        upstreams={"b": {"base_url": "https://b.example", "retry": False, "circuit_breaker": False}},
        handoffs={"b.x": {"upstream": "b", "match": "POST /x", "dedup": False, "retry": False}},
    )
    up, h = cfg.upstreams["b"], cfg.handoffs["b.x"]
    assert not up.retry.enabled and not up.circuit_breaker.enabled
    assert h.dedup is not None and not h.dedup.enabled and h.retry is not None and not h.retry.enabled


def test_redis_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLINE_REDIS_URL", "redis://127.0.0.1:6390/0")
    assert Config().redis_url == "redis://127.0.0.1:6390/0"


def test_a_bad_dedup_key_names_the_file_the_field_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "seamline.yaml"
    path.write_text(
        "upstreams: {billing: {base_url: 'https://billing.example'}}\n"
        "handoffs:\n  billing.charge:\n    upstream: billing\n    match: POST /charges\n    safety: never_repeat\n"
        "    dedup: {key: 'join(,'}\n"
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    text = str(e.value)
    assert "seamline.yaml" in text and "handoffs.billing.charge.dedup.key" in text and "JMESPath" in text
    assert "1 problem" in text and "literal" not in text
