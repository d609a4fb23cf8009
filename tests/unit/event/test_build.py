"""The event build: stored rows byte-identical to the golden corpus; `capture.keep_bodies: sample`'s choice of runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.build_corpus import corpus_rows, digest

from seamline.event.build import run_sampled
from seamline.event.columns import COLUMN_NAMES

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "build_golden.json"


@pytest.fixture(scope="module")
def rows() -> dict[str, str]:
    return corpus_rows()


def test_rows_are_byte_identical_to_the_golden_corpus(rows: dict[str, str]) -> None:
    """Every row of the corpus (support/build_corpus.py) is the same bytes as before the build was optimised."""
    golden = json.loads(GOLDEN.read_text())
    assert sorted(rows) == sorted(golden)
    changed = {name: row for name, row in rows.items() if digest(row) != golden[name]}
    assert not changed, f"{len(changed)} rows changed, e.g. {next(iter(changed))}: {next(iter(changed.values()))[:1500]}"


def test_every_row_has_the_columns_in_order(rows: dict[str, str]) -> None:
    for row in list(rows.values())[::25]:
        assert list(json.loads(row)) == list(COLUMN_NAMES)


def test_the_same_run_gets_the_same_answer_every_time() -> None:
    runs = [f"run-{i}" for i in range(500)]
    assert [run_sampled(r, 0.3) for r in runs] == [run_sampled(r, 0.3) for r in runs]


def test_the_answer_does_not_depend_on_the_process() -> None:
    # Python's hash() is salted per process; replicas must agree on which runs are sampled.
    code = "from seamline.event.build import run_sampled; print([run_sampled(f'run-{i}', 0.3) for i in range(200)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == str([run_sampled(f"run-{i}", 0.3) for i in range(200)])


def test_the_share_of_sampled_runs_follows_the_rate() -> None:
    runs = [f"0193a6b2-7c1e-7d2a-9f3b-{i:012x}" for i in range(20_000)]  # UUIDv7-like: long shared prefixes
    for rate in (0.01, 0.1, 0.5):
        share = sum(run_sampled(r, rate) for r in runs) / len(runs)
        assert abs(share - rate) < max(0.2 * rate, 0.005), (rate, share)


def test_rates_zero_and_one_are_none_and_all() -> None:
    assert not any(run_sampled(f"r{i}", 0.0) for i in range(100))
    assert all(run_sampled(f"r{i}", 1.0) for i in range(100))


def test_a_run_sampled_at_a_low_rate_is_sampled_at_every_higher_one() -> None:
    # Raising ok_sample_rate keeps the runs already kept (the threshold only grows).
    runs = [f"run-{i}" for i in range(2_000)]
    low = {r for r in runs if run_sampled(r, 0.05)}
    assert low and low <= {r for r in runs if run_sampled(r, 0.2)}
