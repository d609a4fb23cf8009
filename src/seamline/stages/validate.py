"""Validate stage: the handoff's contract → outcome, error class, violations (interim: HTTP only)."""

from __future__ import annotations

from typing import Any

from seamline.config import Config
from seamline.exchange import Exchange


class Validator:
    def __init__(self, config: Config, source: str = "seamline.yaml") -> None:
        self.config = config

    def enforces_request(self, handoff: str) -> bool:
        return False

    def check_request(self, ex: Exchange, request: Any) -> list[str]:
        return []

    def outcome(self, ex: Exchange) -> dict[str, Any]:
        status = ex.status
        if ex.error_status or (not status and ex.error_class != "none"):
            return {"outcome": "transport_error" if ex.error_status >= 500 else "http_error", "error_class": ex.error_class}
        if 200 <= status < 400:
            return {"outcome": "ok", "error_class": ex.error_class}
        if status == 429:
            cls = "rate_limited"
        elif status in (401, 403):
            cls = "auth"
        elif status >= 500:
            cls = "server_error"
        else:
            cls = "client_error"
        return {"outcome": "http_error", "error_class": cls}
