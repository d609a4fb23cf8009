"""Record stage: turn a finished Exchange into one immutable event (see `seamline.event`)."""

from __future__ import annotations

from typing import Any

from seamline.config import Config
from seamline.event import new_event
from seamline.exchange import Exchange
from seamline.ids import new_event_id
from seamline.stages.validate import Validator


def _redact_headers(headers: list[tuple[str, str]], deny: set[str], parts: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        kl = k.lower()
        if kl in deny or any(p in kl for p in parts):
            v = "[REDACTED]"
        out[kl] = f"{out[kl]}, {v}" if kl in out else v
    return out


class EventBuilder:
    def __init__(self, config: Config, instance: str, validator: Validator) -> None:
        self.config = config
        self.instance = instance
        self.validator = validator
        cap = config.capture
        self._deny = {h.lower() for h in cap.redact_headers}
        self._parts = tuple(p.lower() for p in cap.redact_header_parts)
        self._safety = {n: h.safety for n, h in config.handoffs.items()}
        self._steps = {n: (h.step or n) for n, h in config.handoffs.items()}

    def build(self, ex: Exchange) -> dict[str, Any]:
        result = self.validator.outcome(ex)
        tc = ex.trace
        target = ex.target
        rq, rs = ex.request_tap, ex.response_tap
        return new_event(
            event_id=new_event_id(),
            ts=ex.ts_us,
            run_id=ex.run_id,
            run_id_source=ex.run_id_source,
            trace_id=tc.trace_id if tc else "",
            span_id=ex.span_id,
            parent_span_id=tc.caller_span_id if tc else "",
            tenant=ex.tenant,
            source_app=ex.source_app,
            handoff=ex.handoff,
            upstream=ex.upstream,
            step=self._steps.get(ex.handoff, ex.handoff),
            mode=ex.mode,
            attempt=ex.attempt,
            idempotency_key=ex.idempotency_key,
            safety=self._safety.get(ex.handoff, ""),
            method=ex.method,
            url=ex.url,
            route=target.handoff.template if target else "",
            status=ex.status or ex.error_status,
            duration_ms=ex.duration_s * 1000.0,
            ttfb_ms=ex.ttfb_s * 1000.0,
            outcome=result["outcome"],
            error_class=result["error_class"],
            error_detail=ex.error_detail,
            request_headers=_redact_headers(ex.request_headers, self._deny, self._parts),
            response_headers=_redact_headers(ex.response_headers, self._deny, self._parts),
            request_bytes=rq.total if rq else 0,
            response_bytes=rs.total if rs else 0,
            request_truncated=rq.truncated if rq else False,
            response_truncated=rs.truncated if rs else False,
            proxy_instance=self.instance,
            attributes=dict(ex.attributes),
        )
