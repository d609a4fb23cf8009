"""The duplicate guard (issue #13): a `never_repeat` or `safe_once` call reaches its upstream at most once per key.

Semantics (the IETF draft-ietf-httpapi-idempotency-key-header and Stripe's published behaviour):
- the key: the `Idempotency-Key` header (an sf-string; `"k"` and `k` are the same key), else the handoff's
  `dedup.key` JMESPath over {request: {method, path, query, headers, body}}; keys are scoped per handoff and tenant;
- the request fingerprint: method + path (with query) + SHA-256 of the exact body, which is read whole before the
  claim (up to server.max_request_body_bytes, else GUARDED_BODY_MAX) and forwarded from those bytes;
- the first request claims the key atomically, with a lease (the upstream's total + read timeouts + a margin);
- a duplicate with another fingerprint → 422 idempotency-key-reused (the draft's 422; Stripe's "parameters differ");
  while the first is in flight → 409 idempotency-in-flight (the draft's 409); the first finished → its upstream
  response, whatever its status (Stripe replays 4xx and 5xx too), with `Seamline-Replayed: true`;
- the first ended with an unknown outcome (a timeout, reset or disconnect after the request was sent; or its owner
  died, the lease passed) → 409 outcome-unknown naming its run, event and external IDs: never an automatic repeat;
- finished but not replayable (response over dedup.max_response_bytes, or not received whole) → 409 outcome-known;
- nothing was sent (connect/DNS/TLS failure, a Seamline refusal, a 422 of `enforce: request`) or the upstream said
  429 (it did not take the request: Stripe keeps no result before execution begins) → the claim is released, so a
  retry may go;
- `require_key` and no key → 400; the store down → `on_store_down`: fail_open forwards unguarded, fail_closed 503.
Every decision lands in `handoffs.guard` (seamline.outcomes GUARD_*).

The external IDs the refusals name (the contract's `extract`) are computed only where one may need them: from the
request at the claim, from the response when the call settles, except what only the response body gives for a
`done` entry, which holds that exact body: those are computed when a refusal asks (`Dedup._named_ids`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jmespath
import orjson
from aiohttp import web

from seamline import errors
from seamline import outcomes as o
from seamline.config.models import Config, Handoff
from seamline.exchange import BodyTap, Exchange, ReplayCapture
from seamline.guards.dedup_store import DedupStore, Entry, MemoryDedupStore, StoreDown
from seamline.ids import new_event_id
from seamline.proxy.deadlines import Deadlines
from seamline.proxy.inbound import Inbound
from seamline.proxy.request_body import BodyDeadlines, send_continue
from seamline.proxy.stage import Respond
from seamline.responses import ExactResponse
from seamline.validate.validator import Validator

log = logging.getLogger("seamline.guards.dedup")

REPLAYED_HEADER = "Seamline-Replayed"
GUARDED_BODY_MAX = 64 * 1024 * 1024  # a guarded body is held in memory: bounded even when max_request_body_bytes is not
LEASE_MARGIN_S = 5.0
_GUARDED = ("never_repeat", "safe_once")
# Error classes of a call that never reached the upstream: its claim is released.
_NOT_FORWARDED = o.SEAMLINE_REFUSAL_CLASSES | {o.CONTRACT, o.NONE}


@dataclass(frozen=True, slots=True)
class Policy:
    """One handoff's duplicate guard, compiled from its config once."""

    window_s: float
    require_key: bool
    fail_open: bool
    max_response_bytes: int
    key: Any  # a compiled JMESPath expression, or None
    capture_cap: int


def policies(config: Config) -> dict[str, Policy]:
    """The guarded handoffs: `never_repeat`/`safe_once` unless `dedup: false`, any other with an explicit `dedup`."""
    out: dict[str, Policy] = {}
    for name, h in config.handoffs.items():
        spec = h.dedup
        if spec is None:
            if h.safety not in _GUARDED:
                continue
            from seamline.config.guards import Dedup

            spec = Dedup()
        if not spec.enabled:
            continue
        out[name] = Policy(
            window_s=spec.window,
            require_key=spec.require_key,
            fail_open=(spec.on_store_down or _default_on_store_down(h)) == "fail_open",
            max_response_bytes=spec.max_response_bytes,
            key=jmespath.compile(spec.key) if spec.key else None,
            capture_cap=h.capture.max_body_bytes if h.capture.max_body_bytes is not None else config.capture.max_body_bytes,
        )
    return out


def _default_on_store_down(h: Handoff) -> str:
    return "fail_closed" if h.safety == "never_repeat" else "fail_open"


def header_key(value: str) -> str:
    """The key of an `Idempotency-Key` value: the draft's sf-string unquoted (`"a\\"b"` → `a"b`), else as sent."""
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return v


def expression_key(expr: Any, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes) -> str:
    """The `dedup.key` expression over the request; '' when it finds nothing. Pure."""
    from urllib.parse import parse_qsl

    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    request = {
        "method": method,
        "path": path,
        "query": dict(parse_qsl(query, keep_blank_values=True)),
        "headers": {k.lower(): v for k, v in headers},
        "body": parsed,
    }
    try:
        got = expr.search({"request": request})
    except Exception:  # noqa: BLE001 - a type error on unexpected data means: no key
        return ""
    if got is None or got == "" or got == []:
        return ""
    return got if isinstance(got, str) else orjson.dumps(got).decode()


def store_key(handoff: str, tenant: str, key: str) -> str:
    """Keys are scoped per handoff and tenant; hashed, so a key of any length or content is a safe store key."""
    digest = hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()
    return f"seamline:dedup:{handoff}:{digest}"


def fingerprints(method: str, path_qs: str, body: bytes) -> tuple[str, str]:
    """(request, body) fingerprints: SHA-256 of method + path, and of the exact body bytes."""
    return hashlib.sha256(f"{method} {path_qs}".encode()).hexdigest(), hashlib.sha256(body).hexdigest()


def sent_unanswered(ex: Exchange) -> bool:
    """The attempt may have reached the upstream and no answer came back (a timeout, a reset after sending). Pure."""
    return not ex.status and not ex.not_sent and ex.error_class not in _NOT_FORWARDED


def settled(ex: Exchange, claim: Entry, fits: Callable[[int], bool]) -> Entry | None:
    """What the call's result leaves in the store: its response, known, unknown, or None (release). Pure.

    A retried call (`safe_to_repeat` with dedup on) is judged by its last attempt, which the client got; but the
    claim is released only when no attempt may have acted unseen: an earlier attempt that was sent and got no answer
    makes the result unknown, whatever came after (an answered 502/503/504/429 is one the retry policy repeats)."""
    keep = ex.replay_capture
    if keep is not None and keep.status:  # the upstream answered: the request was taken
        if keep.status == 429:
            return _released(ex, claim)  # rate limited: the upstream did not act on it, a retry may go
        if keep.complete and not keep.tap.truncated:
            body = keep.tap.data
            if fits(len(body)):
                return claim.result("done", keep.status, keep.reason, keep.headers, body)
            why = "its response could not be kept (the guard's in-process store is full)"
        elif keep.tap.truncated:
            why = f"its response was larger than dedup.max_response_bytes ({keep.tap.cap} bytes)"
        else:
            why = "its response was not received whole"
        return claim.result("known", keep.status, why=why)
    if ex.not_sent or ex.error_class in _NOT_FORWARDED:
        return _released(ex, claim)
    return claim.result("unknown", why=f"it got no answer from the upstream after it was sent ({_failure(ex)})")


def _released(ex: Exchange, claim: Entry) -> Entry | None:
    """None (release the claim), unless an earlier attempt of a retried call was sent and got no answer."""
    for prior in ex.prior_attempts:
        if sent_unanswered(prior):
            why = (
                f"its attempt {prior.attempt} got no answer from the upstream after it was sent ({_failure(prior)}); "
                f"the last attempt (attempt {ex.attempt}) did not change that"
            )
            return claim.result("unknown", why=why)
    return None


def _failure(ex: Exchange) -> str:
    return "a timeout" if ex.error_class == o.TIMEOUT else f"a {ex.error_class} failure"


class Dedup:
    """Request: read the body, claim the key or answer for the first call. Settle: store what the first call got."""

    name = "dedup"
    essential = True  # a guard that failed must not let a never_repeat call through unguarded

    def __init__(
        self,
        config: Config,
        store: DedupStore,
        deadlines: Deadlines,
        echo_headers: Callable[[Exchange], dict[str, str]],
        safe: Callable[[str], str],
        validator: Validator | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policies = policies(config)
        self.store = store
        self.deadlines = deadlines
        self.echo_headers = echo_headers
        self.safe = safe
        self.validator = validator
        self.clock = clock
        self.body_max = config.server.max_request_body_bytes
        if self.body_max is None:
            self.body_max = GUARDED_BODY_MAX
        self.run_header_l = config.server.run_id_header.lower()

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> Any:
        policy = self.policies.get(ex.handoff)
        if policy is None or ex.mode not in ("reverse", "forward"):
            return None
        key = header_key(heads.first("idempotency-key"))
        if not key and policy.key is None:
            self._no_key(ex, policy)
            return None  # not guarded: the body streams as usual
        return self._guard(ex, http, heads, policy, key)

    def _no_key(self, ex: Exchange, policy: Policy) -> None:
        if policy.require_key:
            ex.guard = o.GUARD_KEY_MISSING
            raise errors.IdempotencyKeyMissing(
                f"handoff {ex.handoff!r} requires an Idempotency-Key header (dedup.require_key)"
                + (" or a request its dedup.key finds a key in" if policy.key is not None else "")
            )

    async def _guard(self, ex: Exchange, http: web.BaseRequest, heads: Inbound, policy: Policy, key: str) -> None:
        target = ex.target
        assert target is not None
        body = await self._read_body(ex, http, heads) if http.body_exists else b""
        if not key:
            key = expression_key(policy.key, ex.method, target.path, target.query, heads.relay, body)
            if not key:
                self._record_request(ex, heads, body, policy)
                self._no_key(ex, policy)
                return
        if not ex.idempotency_key:
            ex.idempotency_key = key[:256]  # recorded: the key the guard used, from the expression
        path_qs = f"{target.path}?{target.query}" if target.query else target.path
        request_fp, body_fp = fingerprints(ex.method, path_qs, body)
        ex.event_id = ex.event_id or new_event_id()  # named by the duplicates' answers before the event is built
        t = target.upstream.timeouts
        # IDs the request alone yields, for the duplicates of a call in flight; none when every `extract` reads the
        # response body (with no response yet they find nothing: the same {} without parsing the body).
        parsed = _NOT_PARSED if self._response_body_only(ex) else _parse(body)
        claim = Entry(
            "in_flight", request_fp, body_fp, owner=secrets.token_hex(16), run_id=ex.run_id, event_id=ex.event_id,
            lease_until=self.clock() + t.total + t.read + LEASE_MARGIN_S,
            external_ids={} if parsed is _NOT_PARSED else self._external_ids(ex, parsed, None),
        )  # fmt: skip
        skey = store_key(ex.handoff, ex.tenant, key)
        raw = claim.encode()
        try:
            current = await self.store.claim(skey, raw, policy.window_s)
        except StoreDown as e:
            if policy.fail_open:
                ex.guard = o.GUARD_STORE_DOWN_OPEN  # forwarded unguarded, and recorded so
                return
            self._record_request(ex, heads, body, policy)
            ex.guard = o.GUARD_STORE_DOWN_CLOSED
            raise errors.GuardStoreDown(
                f"the duplicate guard's store did not answer ({e}); dedup.on_store_down is fail_closed"
            ) from None
        if current is None:  # ours: forward, and keep the exact response for the duplicates
            ex.extra["dedup"] = (skey, raw, claim, policy, parsed)
            ex.replay_capture = ReplayCapture(BodyTap(policy.max_response_bytes))
            return
        self._record_request(ex, heads, body, policy)
        self._answer(ex, Entry.decode(current), request_fp, body_fp, policy)

    def _answer(self, ex: Exchange, first: Entry, request_fp: str, body_fp: str, policy: Policy) -> None:
        """A duplicate: raise the answer for it (the first call's response, or a refusal naming the first call)."""
        ex.attributes["dedup_of"] = first.event_id
        if first.state == "done" and (first.request_fp, first.body_fp) == (request_fp, body_fp):
            ex.guard = o.GUARD_REPLAYED
            raise Respond(self._replay(ex, first, policy))
        named = {"first_run_id": first.run_id, "first_event_id": first.event_id, "external_ids": self._named_ids(ex, first)}
        if (first.request_fp, first.body_fp) != (request_fp, body_fp):
            ex.guard = o.GUARD_KEY_REUSED
            what = "body" if first.request_fp == request_fp else "method or path"
            raise errors.IdempotencyKeyReused(
                f"this Idempotency-Key was first used by a request with another {what} (event {first.event_id}); "
                "use a new key for a new request",
                **named,
            )
        if first.state == "in_flight" and first.lease_until > self.clock():
            ex.guard = o.GUARD_BLOCKED_IN_FLIGHT
            raise errors.IdempotencyInFlight(
                f"the first request with this key (event {first.event_id}) has not finished yet; retry later", **named
            )
        if first.state == "known":
            ex.guard = o.GUARD_OUTCOME_KNOWN
            raise errors.OutcomeKnown(
                f"the first request with this key (event {first.event_id}) finished with status {first.status}, but "
                f"{first.why}: look the result up by its event or external IDs",
                first_status=first.status,
                **named,
            )
        ex.guard = o.GUARD_BLOCKED_UNKNOWN
        why = first.why or "the Seamline that sent it stopped before it finished (its lease passed)"
        raise errors.OutcomeUnknown(
            f"the first request with this key (run {first.run_id}, event {first.event_id}) may have taken effect: {why}. "
            "Check the upstream (its external IDs) before sending it again under a new key",
            **named,
        )

    def _replay(self, ex: Exchange, first: Entry, policy: Policy) -> web.StreamResponse:
        """The first call's response as the client got it, with this call's correlation headers."""
        own = {self.run_header_l, "traceparent"}
        headers = [(k, v) for k, v in first.headers if k.lower() not in own]
        headers.extend(self.echo_headers(ex).items())
        headers.append((REPLAYED_HEADER, "true"))
        ex.status = first.status
        ex.response_headers = headers
        ex.response_tap = tap = BodyTap(policy.capture_cap)
        tap.feed(first.body)
        return ExactResponse(status=first.status, reason=first.reason or None, body=first.body, headers=headers)

    def _record_request(self, ex: Exchange, heads: Inbound, body: bytes, policy: Policy) -> None:
        """The request as received, for the record of a call the guard answered itself."""
        ex.request_headers = list(heads.relay)
        ex.request_tap = tap = BodyTap(policy.capture_cap)
        tap.feed(body)

    async def _read_body(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> bytes:
        """The whole body (the fingerprint needs all of it), within the client's idle deadline and the size cap."""
        assert ex.target is not None
        task = asyncio.current_task()
        assert task is not None
        t = ex.target.upstream.timeouts
        timing = BodyDeadlines(self.deadlines, task, t.request_body_idle, t.read, min(t.total, t.read))
        timing.answered = True  # nobody waits for an upstream yet: only the client's idle deadline applies
        await send_continue(http, heads.first("expect"))
        parts: list[bytes] = []
        total = 0
        limit = self.body_max
        assert limit is not None
        while True:
            chunk = await timing.read_chunk(http)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise errors.PayloadTooLarge(f"request body exceeds {limit} bytes")
            parts.append(chunk)
        ex.request_body = body = b"".join(parts)
        return body

    def _response_body_only(self, ex: Exchange) -> bool:
        return self.validator is None or self.validator.extracts_response_body_only(ex.handoff)

    def _external_ids(self, ex: Exchange, request: Any, response: Any) -> dict[str, str]:
        """The contract's IDs over parsed bodies (`_parse`); {} without a contract."""
        if self.validator is None or ex.handoff not in self.validator.contracts:
            return {}
        return self.validator.external_ids(ex, request, response)

    def _named_ids(self, ex: Exchange, first: Entry) -> dict[str, str]:
        """The IDs a refusal names: the first call's stored ones, or, for a `done` entry stored without them (its
        IDs read only the response body, which the entry holds exactly), computed from that body now."""
        ids = first.external_ids
        if first.state == "done" and self._response_body_only(ex):
            ids = {**ids, **self._external_ids(ex, None, _parse(first.body))}
        return {k: self.safe(v) for k, v in ids.items()}

    def settle(self, ex: Exchange) -> Any:
        held = ex.extra.pop("dedup", None)
        if held is None:
            return None
        return self._settle(ex, *held)

    async def _settle(self, ex: Exchange, skey: str, raw: bytes, claim: Entry, policy: Policy, parsed: Any) -> None:
        fits = getattr(self.store, "fits", _always)
        result = settled(ex, claim, fits)
        keep = ex.replay_capture
        # The IDs of the whole response, for a refusal naming this call: computed now unless the entry keeps the
        # exact response body they alone read (a `done` entry; `_named_ids` computes them when one asks).
        lazy = result is not None and result.state == "done" and self._response_body_only(ex)
        if result is not None and not lazy and keep is not None and keep.complete and not keep.tap.truncated:
            if parsed is _NOT_PARSED:
                parsed = _parse(ex.request_body or b"")
            ids = self._external_ids(ex, parsed, _parse(keep.tap.data))
            if ids:
                result = replace(result, external_ids={**result.external_ids, **ids})
        try:
            if not await self.store.settle(skey, raw, result.encode() if result is not None else None, policy.window_s):
                log.warning("dedup: the claim of event %s was replaced before it settled", claim.event_id)
        except StoreDown as e:
            # The Redis store keeps it in the process and writes it again (seamline.guards.dedup_store): this
            # replica's duplicates are answered from it; other replicas see the claim in flight until it lands.
            log.warning(
                "dedup: could not store the result of event %s (%s); kept in this process and written again when the "
                "store answers: until then other replicas answer its duplicates 409 in flight (outcome-unknown after its "
                "lease)", claim.event_id, e,
                extra={"event_id": claim.event_id, "handoff": ex.handoff},
            )  # fmt: skip


def _always(size: int) -> bool:
    return True


_NOT_PARSED: Any = object()  # the request body was not parsed (no `extract` reads it)


def _parse(body: bytes) -> Any:
    """A body as JSON for the `extract` expressions; None when empty or not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def build_store(redis: Any) -> DedupStore:
    """Redis when the sidecar has a shared client, else in-process."""
    if redis is None:
        return MemoryDedupStore()
    from seamline.guards.dedup_store import RedisDedupStore

    return RedisDedupStore(redis)
