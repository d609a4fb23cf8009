"""Free-text secret detectors: detect-secrets' plugin patterns, compiled once per config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from seamline.capture.detectors import DETECTOR_NAMES, _shapes, compile_detectors
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
