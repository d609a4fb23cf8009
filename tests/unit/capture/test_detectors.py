"""Free-text secret detectors: detect-secrets' plugin patterns, compiled once per config."""

from __future__ import annotations

import pytest
from leaks.corpus import KINDS, NEGATIVES
from pydantic import ValidationError

from seamline.capture.detectors import DETECTOR_NAMES, Detector, SecretDetectors, _shapes, compile_detectors
from seamline.capture.redact import RedactionPolicy
from seamline.config.models import Capture

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"


def test_names_are_the_shapes_table() -> None:
    assert tuple(_shapes()) == DETECTOR_NAMES


def test_patterns_come_from_detect_secrets_plugins() -> None:
    from detect_secrets.plugins.aws import AWSKeyDetector

    aws = next(d for d in compile_detectors(DETECTOR_NAMES).detectors if d.name == "aws-access-key-id")
    assert AWSKeyDetector.denylist[0].pattern in aws.pattern.pattern


def test_whole_tokens_go_not_just_the_prefix_detect_secrets_matches() -> None:
    d = compile_detectors(DETECTOR_NAMES)
    stripe = "sk_live_51" + "Ab3" * 30  # real keys run ~100 characters; the plugin's pattern takes 24
    assert d.redact(f"key {stripe} end") == "key [REDACTED] end"
    assert d.redact(f"t={JWT}&x=1") == "t=[REDACTED]&x=1"  # the signature too


def test_found_secrets_are_reported_for_the_cross_scrub() -> None:
    found: list[str] = []
    compile_detectors(DETECTOR_NAMES).redact(f"Authorization: Bearer abc123def456 and {JWT}", found.append)
    assert set(found) == {"abc123def456", JWT}


def test_a_removed_detector_leaves_its_shape_readable() -> None:
    names = [n for n in DETECTOR_NAMES if n != "jwt"]
    policy = RedactionPolicy.from_config(Capture(secret_detectors=names))
    assert policy.redactor().scrub(f"t {JWT}") == f"t {JWT}"
    assert RedactionPolicy.from_config(Capture()).redactor().scrub(f"t {JWT}") == "t [REDACTED]"


def test_user_patterns_redact_group_or_match() -> None:
    policy = RedactionPolicy.from_config(Capture(redact_patterns=[r"acme_[0-9a-f]{12}", r"pin=(\d{4,6})"]))
    out = policy.redactor().scrub("k acme_0123456789ab pin=1234 ok")
    assert out == "k [REDACTED] pin=[REDACTED] ok"


def test_unknown_detector_and_bad_pattern_are_config_errors() -> None:
    with pytest.raises(ValidationError, match="unknown secret detector nope"):
        Capture(secret_detectors=["jwt", "nope"])
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        Capture(redact_patterns=["(unclosed"])


def test_compiled_once_per_config() -> None:
    assert RedactionPolicy.from_config(Capture()).detectors is RedactionPolicy.from_config(Capture()).detectors


ALL = compile_detectors(DETECTOR_NAMES)
# The same patterns with no anchors: every pattern runs on every text (what the anchor scan must not change).
UNFILTERED = SecretDetectors(Detector(d.name, d.pattern, (), d.group, d.late) for d in ALL.detectors)


def test_every_shape_in_the_corpus_holds_an_anchor_of_each_detector_that_matches_it() -> None:
    """An anchor is a literal every match contains: a detector's pattern never matches where its anchors are absent."""
    checked = 0
    for kind in KINDS:
        for d in ALL.detectors:
            for m in d.pattern.finditer(kind.value):
                assert any(a.lower() in m.group(0).lower() for a in d.anchors), (d.name, kind.name, m.group(0))
                checked += 1
    assert checked >= 20


def _glued(values: list[str]) -> list[str]:
    """Texts that put shapes next to each other and to the delimiters the patterns use, in varied case."""
    seps = ["", " ", "\n", "=", ":", '"', "Bearer ", "basic ", "https://", "&token="]
    out = []
    for i, v in enumerate(values):
        w = values[(i * 7 + 3) % len(values)]
        for sep in seps:
            out += [f"{v}{sep}{w}", f"x {v.upper()}{sep}{w.lower()} y", f"{sep}{v}"]
    return out


def test_the_anchor_scan_changes_no_output() -> None:
    """Detectors gated by the one-pass anchor scan redact exactly what running every pattern on every text does."""
    texts = _glued([k.value for k in KINDS] + list(NEGATIVES))
    changed = 0
    for text in texts:
        got: list[str] = []
        want: list[str] = []
        assert ALL.redact(text, got.append) == UNFILTERED.redact(text, want.append), text
        assert got == want, text
        changed += got != []
    assert changed > len(texts) // 2  # the texts do hold shapes


def test_anchors_ignore_ascii_case_and_survive_non_ascii_text() -> None:
    assert ALL.redact("AUTHORIZATION: BEARER abc123def456") == "AUTHORIZATION: BEARER [REDACTED]"
    assert ALL.redact(f"ümlaut ✓ {JWT} \udc80 end") == "ümlaut ✓ [REDACTED] \udc80 end"  # a lone surrogate: no error
    assert ALL.candidates("plain words, nothing to see here") == []
    assert ALL.candidates("short") == []


def test_patterns_without_anchors_run_on_every_text() -> None:
    d = compile_detectors(("jwt",), (r"acme_[0-9a-f]{12}",))
    assert [x.name for x in d.detectors] == ["jwt", "pattern-0"]
    assert d.candidates("no anchor at all here") == [1]
    assert d.redact("k acme_0123456789ab") == "k [REDACTED]"


def test_non_ascii_anchor_is_refused() -> None:
    import re

    with pytest.raises(ValueError, match="not ASCII"):
        SecretDetectors([Detector("x", re.compile("é+"), ("é",))])
