"""The README's config reference is what `seamline.config.reference` generates from the pydantic models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seamline.config import reference as docs
from seamline.config.models import Config

ROOT = Path(__file__).resolve().parents[3]


def test_committed_readme_reference_is_current() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert docs.section_of(text) == docs.config_reference_markdown(), (
        "README.md's config reference is stale: run `python -m seamline.config.reference`"
    )


def test_every_section_and_field_is_documented() -> None:
    md = docs.config_reference_markdown()
    for title in ("upstreams.<name>", "handoffs.<name>", "handoffs.<name>.contract", "server", "capture", "storage", "telemetry"):
        assert f"### `{title}`" in md
    for key in ("timeouts.connect", "redact_headers.deny", "capture.max_body_bytes", "assert", "clickhouse_url", "otlp_endpoint"):
        assert f"| `{key}` |" in md
    assert "SEAMLINE_CLICKHOUSE_URL" in md and "SEAMLINE_SERVER__<KEY>" in md
    undocumented = [line for line in md.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert not undocumented, "give these fields a description= in seamline/config/models.py"


def test_rows_show_types_defaults_and_bounds() -> None:
    md = docs.config_reference_markdown()
    assert "| `base_url` | string | *required* |" in md
    assert "| `port` | integer (≥ 0, ≤ 65535) | `8080` |" in md
    assert '| `enforce` | one of `record`, `request` | `"record"` |' in md
    assert "| `ca_bundle` | string or null | `null` |" in md


def test_every_row_has_four_cells() -> None:
    rows = [line for line in docs.config_reference_markdown().splitlines() if line.startswith("| `")]
    assert len(rows) > len(Config.model_fields)
    for line in rows:
        assert len(re.findall(r"(?<!\\)\|", line)) == 5, line  # a `|` inside a cell is escaped


def test_update_readme_replaces_between_markers_only(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{docs.BEGIN}\nold text\n{docs.END}\nafter\n", encoding="utf-8")
    assert docs.update_readme(readme) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{docs.END}\nafter\n")
    assert "old text" not in text and docs.section_of(text) == docs.config_reference_markdown()
    assert docs.update_readme(readme) is False  # idempotent
    assert readme.read_text(encoding="utf-8") == text


def test_update_readme_without_markers_fails_loudly(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(docs.MarkersMissing, match=r"README\.md"):
        docs.update_readme(readme)
    assert readme.read_text(encoding="utf-8") == "# no markers\n"


def test_main_check_reports_stale_then_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{docs.BEGIN}\n{docs.END}\n", encoding="utf-8")
    assert docs.main([str(readme), "--check"]) == 1
    assert docs.main([str(readme)]) == 0
    assert docs.main([str(readme), "--check"]) == 0
    assert "stale" in capsys.readouterr().out
