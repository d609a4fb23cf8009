"""Build the handoff event: a finished Exchange becomes one immutable, redacted row (columns: `seamline.event.columns`).

Order matters for redaction: both header sets and the URL are redacted first (collecting secret
values), then bodies are rendered and scrubbed, then the error text.

`capture.keep_bodies` (failures | sample) decides whose bodies and headers the row keeps once the outcome is known:
the bodies are first only parsed for the contract; an ok call that is not kept is never redacted, rendered or stored
(measured in docs/benchmarks.md). Sampling is by run ID (`run_sampled`), so every replica keeps the same runs whole.
"""

from __future__ import annotations

import hashlib
from typing import Any

from seamline.capture.bodies import RenderedBody, redact_parsed, render_body
from seamline.capture.redact import HeaderSet, RedactionPolicy, Redactor
from seamline.config.models import Config
from seamline.exchange import BodyTap, Exchange
from seamline.ids import new_event_id
from seamline.outcomes import OK
from seamline.validate.validator import Validator

_EMPTY = RenderedBody("", empty=True)
_NOT_KEPT = {"bodies": "not_kept"}


def run_sampled(run_id: str, rate: float) -> bool:
    """Is this run in the `rate` share of runs whose ok calls keep their bodies? The same answer in every process."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=8).digest(), "big")
    return h < rate * 2**64


class EventBuilder:
    """Builds events; one redaction policy per upstream, compiled once."""

    def __init__(self, config: Config, instance: str, validator: Validator) -> None:
        self.config = config
        self.instance = instance
        self.validator = validator
        cap = config.capture
        self._default_policy = RedactionPolicy.from_config(cap)
        self._policies = {n: RedactionPolicy.from_config(cap, u.redact_headers) for n, u in config.upstreams.items()}
        self._safety = {n: h.safety for n, h in config.handoffs.items()}
        self._steps = {n: (h.step or n) for n, h in config.handoffs.items()}
        self._keep_all = cap.keep_bodies == "all"
        self._ok_sample_rate = cap.ok_sample_rate if cap.keep_bodies == "sample" else 0.0

    def _render(self, tap: BodyTap | None, headers: HeaderSet, redactor: Redactor | None) -> RenderedBody:
        if tap is None or tap.total == 0:
            return _EMPTY
        return render_body(
            tap.data,
            content_type=headers.content_type or None,
            content_encoding=headers.content_encoding or None,
            truncated=tap.truncated,
            total_bytes=tap.total,
            redactor=redactor,
            limit=max(tap.cap, 1),
        )

    def build(self, ex: Exchange) -> dict[str, Any]:
        redactor = self._policies.get(ex.upstream, self._default_policy).redactor()
        # Each header list is read once (names lower-cased, verdicts, secrets collected, the contracts' view).
        req_set = redactor.read_headers(ex.request_headers)
        resp_set = redactor.read_headers(ex.response_headers)
        # One scan for credential shapes over the plain header values and the idempotency key instead of one per text:
        # most events have none, and then the detectors need not look at them again. (Not the URL: its `://` is an
        # anchor, so every URL is a candidate.)
        shapes = redactor.may_detect([ex.idempotency_key, *req_set.plain, *resp_set.plain])
        url = redactor.redact_url(ex.url) if ex.url else ""  # collects query secrets too
        views = {"req_headers": req_set.lowered, "resp_headers": resp_set.lowered}
        if self._keep_all:
            req_headers = redactor.redact_header_set(req_set, detect=shapes)
            resp_headers = redactor.redact_header_set(resp_set, detect=shapes)
            req_body = self._render(ex.request_tap, req_set, redactor)
            resp_body = self._render(ex.response_tap, resp_set, redactor)
            evaluation, result, req_violations = self.validator.evaluate(ex, req_body, resp_body, **views)
            kept = True
        else:  # parsed for the contract only; rendered once the outcome says the row keeps them
            req_body = self._render(ex.request_tap, req_set, None)
            resp_body = self._render(ex.response_tap, resp_set, None)
            evaluation, result, req_violations = self.validator.evaluate(ex, req_body, resp_body, **views)
            kept = result.outcome != OK or run_sampled(ex.run_id, self._ok_sample_rate)
            if kept:
                req_headers = redactor.redact_header_set(req_set, detect=shapes)
                resp_headers = redactor.redact_header_set(resp_set, detect=shapes)
                # A JSON body's parsed value is redacted as it is; any other kind is rendered again, with the redactor.
                req_body = redact_parsed(req_body, redactor) or self._render(ex.request_tap, req_set, redactor)
                resp_body = redact_parsed(resp_body, redactor) or self._render(ex.response_tap, resp_set, redactor)
            else:
                req_headers, resp_headers = {}, {}
                if evaluation is not None and evaluation.external_ids:
                    # An extracted ID may be a value under a secret body key: walk the bodies so scrub() knows it.
                    for body in (req_body, resp_body):
                        if body.is_json:
                            redactor.redact_json(body.parsed_json)
        violations = list(req_violations)
        attributes = dict(ex.attributes) if kept else {**ex.attributes, **_NOT_KEPT}
        external_ids: dict[str, str] = {}
        unknown: list[str] = []
        missing: list[str] = []
        if evaluation is not None:
            violations.extend(evaluation.violations)
            external_ids = evaluation.external_ids
            unknown, missing = evaluation.unknown_fields, evaluation.missing_fields
            if evaluation.unvalidated_reason:
                attributes["unvalidated_reason"] = evaluation.unvalidated_reason
        if req_body.json_error:
            attributes["request_json_error"] = req_body.json_error[:200]
        if resp_body.json_error:
            attributes["response_json_error"] = resp_body.json_error[:200]
        tc = ex.trace
        target = ex.target
        rq, rs = ex.request_tap, ex.response_tap
        # Every column, in COLUMNS order (the row is encoded in this order; tests check it): a literal, not new_event().
        return {
            "event_id": ex.event_id or new_event_id(),
            "ts": ex.ts_us,
            "run_id": ex.run_id,
            "run_id_source": ex.run_id_source,
            "trace_id": tc.trace_id if tc else "",
            "span_id": ex.span_id,
            "parent_span_id": tc.caller_span_id if tc else "",
            "tenant": ex.tenant,
            "source_app": ex.source_app,
            "handoff": ex.handoff,
            "upstream": ex.upstream,
            "step": self._steps.get(ex.handoff, ex.handoff),
            "mode": ex.mode,
            "attempt": ex.attempt,
            "idempotency_key": redactor.scrub(ex.idempotency_key, detect=shapes),
            "safety": self._safety.get(ex.handoff, ""),
            "method": ex.method,
            "url": url,
            "route": target.handoff.template if target else "",
            "status": ex.status or ex.error_status,
            "duration_ms": ex.duration_s * 1000.0,
            "ttfb_ms": ex.ttfb_s * 1000.0,
            "outcome": result.outcome,
            "error_class": result.error_class,
            "error_detail": redactor.scrub(ex.error_detail),
            "violations": violations,
            "unknown_fields": list(unknown),
            "missing_fields": list(missing),
            "external_ids": {k: redactor.scrub(v) for k, v in external_ids.items()},
            "retry_after_s": result.retry_after_s,
            "request_headers": req_headers,
            "response_headers": resp_headers,
            "request_body": req_body.text if kept else "",
            "response_body": resp_body.text if kept else "",
            "request_content_type": req_set.content_type[:100],
            "response_content_type": resp_set.content_type[:100],
            "request_bytes": rq.total if rq else int(ex.extra.get("tunnel", (0, 0))[0]),  # a tunnel's or WebSocket's bytes
            "response_bytes": rs.total if rs else int(ex.extra.get("tunnel", (0, 0))[1]),
            "request_truncated": rq.truncated if rq else False,
            "response_truncated": rs.truncated if rs else False,
            "proxy_instance": self.instance,
            "attributes": attributes,
            "guard": ex.guard,
            "loop_suspected": ex.loop_suspected,
            "retry_of": ex.retry_of,
            "replay_of": ex.replay_of,
            "guard_wait_ms": ex.guard_wait_s * 1000.0,
        }
