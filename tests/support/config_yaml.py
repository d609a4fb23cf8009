"""A seamline.yaml written into a test's temporary directory, and the ConfigError its loading raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from seamline.config.loader import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    """`text` as tmp_path/seamline.yaml (the name every error message must carry)."""
    p = tmp_path / "seamline.yaml"
    p.write_text(text)
    return p


def error_of(path: Path) -> str:
    """The message of the ConfigError that loading `path` must raise."""
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return str(e.value)
