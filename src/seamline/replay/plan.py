"""What a replay would send, decided from a recorded event and the config alone. Pure: no I/O.

A recorded request can be re-sent only when the record holds all of it: the body captured whole (not truncated,
not a binary placeholder) and nothing of it redacted (a `[REDACTED]` in the body or the URL would be sent as is).
Headers never come from the record (it is redacted): only the safe content headers below are kept, the proxy adds
the upstream's configured `headers` (its credentials) itself, and the correlation headers are Seamline's own.

Step safety decides what a replay needs: `safe_to_repeat` goes; `safe_once` needs an Idempotency-Key (the
original's, or a new one); `never_repeat` needs `force` and an idempotency key given for the replay, so the
duplicate guard protects the replay itself (a second replay with the same key gets the first replay's answer).
A handoff the config does not name (`<upstream>.other`) is treated as `safe_to_repeat` for GET/HEAD/OPTIONS and as
`never_repeat` otherwise: Seamline does not know what it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seamline import outcomes as o
from seamline.capture.redact import REDACTED
from seamline.config.models import Config

# Request headers a replay keeps from the record (when not redacted): what the body means, what the caller accepts.
SAFE_HEADERS = ("content-type", "accept", "accept-language", "content-language")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BINARY_PREFIX = "[binary "
_MODES = frozenset({"reverse", "forward"})
MAX_KEY_LEN = 256


@dataclass(frozen=True, slots=True)
class Refusal(Exception):
    """Why an event cannot be replayed: an admin problem+json (status, slug, title, detail)."""

    status: int
    slug: str
    title: str
    detail: str


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """One request to send to the proxy listener (reverse mode), and what it replays."""

    event_id: str  # the event re-sent
    run_id: str
    handoff: str
    safety: str
    method: str
    target: str  # `/{upstream}{path}?{query}`, as the proxy's reverse mode takes it
    headers: tuple[tuple[str, str], ...]
    body: bytes
    idempotency_key: str


def safety_of(config: Config, row: dict[str, Any]) -> str:
    """The step safety a replay obeys: the config's (the guards apply it), else what was recorded, else by method."""
    h = config.handoffs.get(str(row.get("handoff") or ""))
    if h is not None:
        return h.safety
    recorded = str(row.get("safety") or "")
    if recorded:
        return recorded
    return "safe_to_repeat" if str(row.get("method") or "").upper() in _SAFE_METHODS else "never_repeat"


def upstream_path(config: Config, upstream: str, url: str) -> str:
    """The recorded upstream URL as a path under `/{upstream}` (its base_url's prefix taken off)."""
    up = config.upstreams.get(upstream)
    if up is None:
        raise Refusal(409, "replay-not-possible", "Event cannot be replayed", f"upstream {upstream!r} is no longer configured")
    base = up.base_url.rstrip("/")
    if not (url == base or url.startswith((base + "/", base + "?"))):
        raise Refusal(
            409, "replay-not-possible", "Event cannot be replayed",
            f"the recorded URL is not under upstream {upstream!r}'s base_url any more (the config changed)",
        )  # fmt: skip
    rest = url[len(base) :] or "/"
    if rest.startswith("?"):
        rest = "/" + rest
    return f"/{upstream}{rest}"


def plan(config: Config, row: dict[str, Any], *, force: bool = False, idempotency_key: str = "") -> ReplayRequest:
    """The replay of one recorded event, or a `Refusal` saying why not."""
    event_id = str(row.get("event_id") or "")
    mode = str(row.get("mode") or "")
    if mode not in _MODES:
        raise Refusal(409, "replay-not-possible", "Event cannot be replayed", f"a {mode or 'unrouted'} call cannot be replayed")
    if row.get("outcome") == o.REFUSED and not row.get("handoff"):
        raise Refusal(409, "replay-not-possible", "Event cannot be replayed", "the call was refused before it was routed")
    body_text = str(row.get("request_body") or "")
    if row.get("request_truncated"):
        raise Refusal(
            409, "replay-body-not-captured", "Request body not captured whole",
            f"the request body ({row.get('request_bytes')} bytes) was larger than the capture cap: the record does not "
            "hold all of it",
        )  # fmt: skip
    if int(row.get("request_bytes") or 0) and not body_text:
        raise Refusal(409, "replay-body-not-captured", "Request body not captured whole", "the request body was not captured")
    if body_text.startswith(_BINARY_PREFIX):
        raise Refusal(
            409, "replay-body-not-captured", "Request body not captured whole",
            "the request body was binary: the record keeps only its size and type",
        )  # fmt: skip
    if REDACTED in body_text:
        raise Refusal(
            409, "replay-body-redacted", "Request body was redacted",
            "secrets in the request body were redacted when it was recorded: the record cannot be re-sent as it was",
        )  # fmt: skip
    url = str(row.get("url") or "")
    if REDACTED in url or "%5BREDACTED%5D" in url:
        raise Refusal(
            409, "replay-body-redacted", "Request URL was redacted",
            "secrets in the request URL were redacted when it was recorded: the record cannot be re-sent as it was",
        )  # fmt: skip
    safety = safety_of(config, row)
    key = idempotency_key.strip()
    if len(key) > MAX_KEY_LEN or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise Refusal(400, "bad-request", "Malformed request", f"idempotency_key: printable, at most {MAX_KEY_LEN} characters")
    original_key = str(row.get("idempotency_key") or "")
    if REDACTED in original_key:
        original_key = ""
    if safety == "never_repeat":
        if not force:
            raise Refusal(
                409, "replay-needs-force", "never_repeat step: replay needs force",
                f"handoff {row.get('handoff')!r} is never_repeat: it may already have taken effect. Check the upstream, "
                "then replay with force and a new idempotency key (seamline replay --force --idempotency-key KEY)",
            )  # fmt: skip
        if not key:
            raise Refusal(
                409, "replay-needs-idempotency-key", "never_repeat step: replay needs an idempotency key",
                "a forced replay of a never_repeat step must carry an idempotency key (--idempotency-key KEY), so that "
                "the duplicate guard lets it reach the upstream at most once",
            )  # fmt: skip
    elif safety == "safe_once":
        key = key or original_key
        if not key:
            raise Refusal(
                409, "replay-needs-idempotency-key", "safe_once step: replay needs an idempotency key",
                "the original call carried no Idempotency-Key: give one for the replay (--idempotency-key KEY)",
            )  # fmt: skip
    else:
        key = key or original_key
    recorded = row.get("request_headers") or {}
    headers = [
        (name, str(recorded[name]))
        for name in SAFE_HEADERS
        if name in recorded and REDACTED not in str(recorded[name]) and not (name == "content-type" and not body_text)
    ]
    if body_text and "content-type" not in recorded and row.get("request_content_type"):
        headers.append(("content-type", str(row["request_content_type"])))
    return ReplayRequest(
        event_id=event_id,
        run_id=str(row.get("run_id") or ""),
        handoff=str(row.get("handoff") or ""),
        safety=safety,
        method=str(row.get("method") or "GET").upper(),
        target=upstream_path(config, str(row.get("upstream") or ""), url),
        headers=tuple(headers),
        body=body_text.encode(),
        idempotency_key=key,
    )


def failed_events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of one run worth replaying: failed ones whose call did not recover later (a later attempt of the
    same call, or a replay of it, ended ok), one per call (its last attempt), oldest first."""
    call_of = {str(r.get("event_id")): str(r.get("retry_of") or r.get("event_id")) for r in rows}
    ok_calls = set()
    for r in rows:
        if r.get("outcome") in (o.OK, o.UNVALIDATED, o.REPLAYED):
            ok_calls.add(call_of[str(r.get("event_id"))])
            if r.get("replay_of"):
                ok_calls.add(call_of.get(str(r["replay_of"]), str(r["replay_of"])))
    last: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("outcome") not in o.RUN_FAILED_OUTCOMES or r.get("replay_of"):
            continue  # a failed replay is reported by replaying its original again
        call = str(r.get("retry_of") or r.get("event_id"))
        if call not in ok_calls:
            last[call] = r  # rows are oldest first: the call's last attempt wins
    return list(last.values())
