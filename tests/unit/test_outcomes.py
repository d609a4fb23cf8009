"""One vocabulary: every outcome, error class and refusal is declared once in seamline.outcomes and used from there."""

from __future__ import annotations

import re
from pathlib import Path

from seamline import errors
from seamline import outcomes as o
from seamline.event.columns import COLUMNS

SRC = Path(__file__).resolve().parents[2] / "src" / "seamline"


def _proxy_errors() -> list[type[errors.ProxyError]]:
    out, todo = [], [errors.ProxyError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_problem_class_is_in_the_vocabulary_and_deliberately_classified() -> None:
    for cls in _proxy_errors():
        assert cls.error_class in o.ERROR_CLASSES, cls
        # A new typed error must be placed on purpose: refused, the request contract, or an upstream transport failure.
        assert cls.error_class in o.SEAMLINE_REFUSAL_CLASSES | {o.CONTRACT} | o.TRANSPORT_CLASSES, cls


def test_refusal_set_is_seamlines_own_and_disjoint_from_upstream_classes() -> None:
    assert set(o.ERROR_CLASSES) >= o.SEAMLINE_REFUSAL_CLASSES
    assert not o.SEAMLINE_REFUSAL_CLASSES & (o.UPSTREAM_CLASSES | {o.CONTRACT, o.NONE})
    assert {
        "refused",
        "unknown_upstream",
        "bad_request",
        "too_large",
        "unauthorized",
        "not_implemented",
    } <= o.SEAMLINE_REFUSAL_CLASSES


def test_outcome_groups_use_declared_outcomes() -> None:
    assert o.REFUSED in o.OUTCOMES and len(set(o.OUTCOMES)) == len(o.OUTCOMES) == 8
    for group in (o.FAILED_OUTCOMES, o.ERROR_OUTCOMES, o.RUN_FAILED_OUTCOMES, o.NOT_JUDGED_OUTCOMES):
        assert set(group) <= set(o.OUTCOMES)
    assert o.REFUSED not in o.FAILED_OUTCOMES + o.ERROR_OUTCOMES  # upstream health never counts a refusal
    assert o.REFUSED in o.RUN_FAILED_OUTCOMES  # but the run's step did fail
    # A replayed duplicate is neither: the first call's outcome is the one that counts, for the run and the rates.
    assert o.REPLAYED not in o.RUN_FAILED_OUTCOMES and o.REPLAYED in o.NOT_JUDGED_OUTCOMES


def test_guard_vocabulary() -> None:
    assert o.GUARD_CLASSES <= o.SEAMLINE_REFUSAL_CLASSES  # a guard's own answer is a refusal, never the upstream's
    assert set(o.DUPLICATES_PREVENTED) <= set(o.GUARD_DECISIONS) and o.GUARD_DECISIONS[0] == ""
    assert len(set(o.GUARD_DECISIONS)) == len(o.GUARD_DECISIONS)
    docs = {c.name: c.doc for c in COLUMNS}
    assert docs["guard"].removeprefix("What a guard did: ").split(" | ") == [g for g in o.GUARD_DECISIONS if g]


def test_column_docs_list_every_value() -> None:
    docs = {c.name: c.doc for c in COLUMNS}
    assert docs["outcome"].split(" | ") == list(o.OUTCOMES)
    assert docs["error_class"].split(" | ") == list(o.ERROR_CLASSES)


def test_no_module_spells_an_outcome_itself() -> None:
    distinctive = "|".join(v for v in o.OUTCOMES if "_" in v or v == o.UNVALIDATED)
    pattern = re.compile(rf"""['"]({distinctive})['"]""")
    offenders = [
        f"{p.relative_to(SRC)}:{n}"
        for p in sorted(SRC.rglob("*.[pj][ys]"))
        if p.name != "outcomes.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "import the outcome from seamline.outcomes"


def test_sql_list_quotes_each_value() -> None:
    assert o.sql_list(o.ERROR_OUTCOMES) == "('http_error', 'transport_error')"
