"""No test fixture is stamped with a literal date: stored rows age past their TTLs and the suite rots.

Times come from `support.clock` (now, floored) or an injected clock. A literal date that never meets a clock (a
value to redact, a message text) is allowed on a line marked `# date-ok` with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MARK = "# date-ok"
LITERALS = {
    "date constructor": re.compile(r"\(\s*(?:19|20)\d\d\s*,\s*\d{1,2}\s*,\s*\d{1,2}\b"),
    "ISO date": re.compile(r"(?:19|20)\d\d-[01]\d-[0-3]\d"),
    "HTTP date": re.compile(r"\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?:19|20)\d\d\b"),
    # Unix time in s, ms, µs or ns between 2017 and 2033, as a number or a string of digits.
    "epoch": re.compile(r"(?<![\w.])1[5-9]\d{8}(?:\d{3}){0,3}(?!\w)"),
}


def literal_dates(line: str) -> list[str]:
    """The kinds of absolute date found on one line of source (underscores in numbers ignored)."""
    plain = re.sub(r"(?<=\d)_(?=\d)", "", line)
    return [kind for kind, pattern in LITERALS.items() if pattern.search(plain)]


@pytest.mark.parametrize(
    "line",
    [
        "T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)",  # date-ok: a sample the guard must catch
        "NOW = utc(2026, 11, 20, 12, 0, 0)",  # date-ok: a sample the guard must catch
        "ev = make_event(ts=1_795_219_200_123_456)",  # date-ok: a sample the guard must catch
        'big = [{"ts": "1795219200000000"}]',  # date-ok: a sample the guard must catch
        "NOW = 1_750_000_000.0",  # date-ok: a sample the guard must catch
        '"first_ts": "2026-11-20T12:00:00+00:00"',  # date-ok: a sample the guard must catch
        '{"retry-after": "Fri, 20 Nov 2026 12:00:00 GMT"}',  # date-ok: a sample the guard must catch
    ],
)
def test_absolute_dates_are_recognised(line: str) -> None:
    assert literal_dates(line)


@pytest.mark.parametrize(
    "line",
    [
        'TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"',
        'VISA = "4111111111111111"',
        'msg = error_of(write(tmp_path, "storage:\\n  max_insert_bytes: 1073741824\\n"))',
        '{"headers": {"X-Api-Version": "2024-01"}}',
        '(tmp_path / "0000000000000001.seg").write_bytes(blob)',
        "T = utc_now(timedelta(minutes=1)) - timedelta(days=7)",
    ],
)
def test_relative_times_and_other_numbers_pass(line: str) -> None:
    assert literal_dates(line) == []


# Data fixtures too: a date in a JSON or YAML document a test loads rots like one in code. A format without comments
# (JSON) carries the mark in a field of its own on the date's line (tests/data/openapi/README.md).
FIXTURE_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".md", ".txt", ".csv", ".sql")


def test_no_fixture_uses_an_absolute_date() -> None:
    found = [
        f"{path.relative_to(TESTS)}:{n}: {kinds}: {line.strip()[:200]}"
        for path in sorted(TESTS.rglob("*"))
        if path.suffix in FIXTURE_SUFFIXES and path.is_file() and path != Path(__file__).resolve()
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if MARK not in line and (kinds := literal_dates(line))
    ]
    assert found == [], "use support.clock (or mark a date that never meets a clock `# date-ok: why`):\n" + "\n".join(found)
