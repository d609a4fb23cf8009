"""Run IDs and W3C ids: validate what callers send, mint what they don't."""

from __future__ import annotations

import os
import random

import uuid_utils

MAX_RUN_ID_LEN = 128
# IDs need to be unpredictable enough to never collide, not secret: a PRNG seeded from the OS
# (SystemRandom costs an os.urandom syscall per ID on the request path).
_rng = random.Random(os.urandom(32))


def is_valid_run_id(value: str) -> bool:
    """≤ 128 visible ASCII characters: no spaces, controls, CR/LF or non-ASCII.

    String methods, not a regex: ≈ 30 % faster per call (up to 3 calls per request), and exact — the regex's `$`
    also matched before a final newline, so an ID ending in one passed.
    """
    return 0 < len(value) <= MAX_RUN_ID_LEN and value.isascii() and value.isprintable() and " " not in value


def mint_run_id() -> str:
    """A fresh, time-sortable run ID (UUIDv7)."""
    return str(uuid_utils.uuid7())


def new_event_id() -> str:
    return str(uuid_utils.uuid7())


def new_trace_id() -> str:
    """32 lowercase hex chars, random (so the W3C `random` flag may be set), never all zero."""
    while True:
        v = _rng.getrandbits(128)
        if v:
            return f"{v:032x}"


def new_span_id() -> str:
    while True:
        v = _rng.getrandbits(64)
        if v:
            return f"{v:016x}"
