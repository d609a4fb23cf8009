"""Property tests of config loading on generated YAML: a Config or a ConfigError, never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from seamline.config.loader import ConfigError, load_config
from seamline.config.models import Config

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=30))
# Values shaped like the real file: known section and field names, random values, random nesting.
KEYS = ["upstreams", "handoffs", "server", "capture", "storage", "telemetry", "base_url", "match", "upstream", "port",
        "redact_keys", "secret_detectors", "redact_patterns", "retry", "dedup", "timeouts", "contract", "api", "x"]  # fmt: skip
odd_keys = st.one_of(st.none(), st.integers(), st.booleans())  # YAML mapping keys need not be strings
values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(KEYS), kids, max_size=5), max_leaves=25
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), odd_keys), values, max_size=4),
    st.builds(
        lambda base, match, extra: {
            "upstreams": {"api": {"base_url": base, **extra}},
            "handoffs": {"api.x": {"upstream": "api", "match": match}},
        },
        st.one_of(st.just("https://api.example.com"), st.text(max_size=40)),
        st.one_of(st.just("GET /v1/{id}"), st.text(max_size=30)),
        st.dictionaries(st.sampled_from(["retry", "timeouts", "allow_private", "circuit_breaker"]), values, max_size=2),
    ),
)


def _load(tmp: Path, text: str) -> None:
    path = tmp / "seamline.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(path)
    except ConfigError as e:
        assert str(e).startswith(str(path)), e  # the message names the file
        return
    assert isinstance(cfg, Config)


@given(documents)
def test_generated_yaml_loads_or_is_refused_readably(tmp_path_factory: Any, doc: dict[str, Any]) -> None:
    _load(tmp_path_factory.mktemp("cfg"), yaml.safe_dump(doc, allow_unicode=True))


@given(st.text(max_size=400))
def test_arbitrary_text_loads_or_is_refused_readably(tmp_path_factory: Any, text: str) -> None:
    _load(tmp_path_factory.mktemp("cfg"), text)


def test_non_string_top_level_key_is_a_config_error(tmp_path: Path) -> None:
    """Found by fuzz/fuzz_parsers.py (config): the YAML `?` is `{None: None}`; it raised TypeError."""
    for text in ("?", "1: 2", "true: x", "upstreams: {}\nnull: 1"):
        path = tmp_path / "seamline.yaml"
        path.write_text(text)
        try:
            load_config(path)
        except ConfigError as e:
            assert "is not a name" in str(e)
        else:
            raise AssertionError(f"{text!r} loaded")
