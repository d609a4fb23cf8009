"""Mock CRM, billing, provisioning and email APIs with seeded failure injection (127.0.0.1 unless told otherwise).

Whether a call fails, and how, is a pure function of (seed, failure rate, handoff, order, attempt)
(`plan_fault`), so a demo replays identically whatever the concurrency: the driver names the order in
`X-Demo-Order` and the attempt in `X-Demo-Attempt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

FAULT_KINDS: tuple[str, ...] = (
    "timeout", "server_error", "rate_limited", "auth_expired", "declined", "drop_field", "slow", "lost_answer",
)  # fmt: skip
# A "lost_answer" charge succeeds, but answers after this long: past the app's own charge timeout (the app gives up
# and retries with the same Idempotency-Key), well within Seamline's read timeout (Seamline keeps the answer).
LOST_ANSWER_S = 0.9


@dataclass(frozen=True)
class Endpoint:
    handoff: str
    service: str
    method: str
    path: str
    faults: tuple[str, ...]  # drawn uniformly; repeat a kind to weight it


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "crm.create_contact", "crm", "POST", "/v1/contacts", ("drop_field", "drop_field", "server_error", "rate_limited", "slow")
    ),
    Endpoint(
        "billing.create_invoice", "billing", "POST", "/v1/invoices", ("auth_expired", "server_error", "rate_limited", "slow")
    ),
    Endpoint(
        "billing.charge", "billing", "POST", "/v1/charges", ("declined", "declined", "timeout", "server_error", "lost_answer")
    ),
    Endpoint("billing.refund", "billing", "POST", "/v1/refunds", ()),  # compensation: kept reliable
    Endpoint("provisioning.create_account", "provisioning", "POST", "/v1/accounts", ("timeout", "server_error", "slow")),
    Endpoint("email.send_welcome", "email", "POST", "/v1/messages", ("rate_limited", "auth_expired", "server_error", "slow")),
)
# The two sides of the demo's sync loop (a CRM→billing sync and a billing→CRM sync that each react to the other's
# update): never faulty, so the loop runs until something stops it.
SYNC_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("crm.update_contact", "crm", "PATCH", "/v1/contacts/{id}", ()),
    Endpoint("billing.update_customer", "billing", "PATCH", "/v1/customers/{id}", ()),
)
SERVICES: tuple[str, ...] = ("crm", "billing", "provisioning", "email")
BY_HANDOFF = {e.handoff: e for e in ENDPOINTS + SYNC_ENDPOINTS}


def plan_fault(seed: int, failure_rate: float, handoff: str, order: str, attempt: int) -> str | None:
    """The fault injected into this call, or None: deterministic for the same arguments."""
    faults = BY_HANDOFF[handoff].faults
    if not faults or failure_rate <= 0 or (handoff == "billing.charge" and attempt > 1):
        return None  # a retried charge is the same charge: its fate was the first attempt's
    rng = random.Random(f"{seed}/{handoff}/{order}/{attempt}")
    if rng.random() >= failure_rate:
        return None
    return rng.choice(faults)


def slow_delay(seed: int, handoff: str, order: str, attempt: int, bounds: tuple[float, float]) -> float:
    return random.Random(f"slow/{seed}/{handoff}/{order}/{attempt}").uniform(*bounds)


def _id(prefix: str, *parts: object) -> str:
    return prefix + "_" + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Injection:
    handoff: str
    order: str
    attempt: int
    fault: str
    run_id: str


@dataclass
class MockFleet:
    """The four mock APIs; `injections` logs every fault actually served."""

    seed: int = 7
    failure_rate: float = 0.2
    hang_s: float = 30.0  # a "timeout" holds the request this long (or until stop), past any sane proxy timeout
    slow_s: tuple[float, float] = (0.15, 0.45)
    host: str = "127.0.0.1"  # bind address; 0.0.0.0 in a container
    ports: tuple[int, ...] | None = None  # one per SERVICES entry, in order; None: ephemeral
    urls: dict[str, str] = field(default_factory=dict)  # connectable base URLs (127.0.0.1 for a wildcard bind)
    injections: list[Injection] = field(default_factory=list)
    _runners: list[web.AppRunner] = field(default_factory=list)
    _stopping: asyncio.Event | None = None
    hanging: asyncio.Event | None = None  # set once a "timeout" fault is holding a request
    _counter: int = 0

    async def start(self) -> dict[str, str]:
        if self.ports is not None and len(self.ports) != len(SERVICES):
            raise ValueError(f"give {len(SERVICES)} ports, one each for {', '.join(SERVICES)}")
        self._stopping = asyncio.Event()
        self.hanging = asyncio.Event()
        try:
            for i, service in enumerate(SERVICES):
                await self._start_one(service, self.ports[i] if self.ports is not None else 0)
        except BaseException:
            await self.stop()  # a port in use must not leave the other mocks listening
            raise
        return dict(self.urls)

    async def _start_one(self, service: str, port: int) -> None:
        app = web.Application()
        for ep in ENDPOINTS + SYNC_ENDPOINTS:
            if ep.service == service:
                app.router.add_route(ep.method, ep.path, self._handler(ep))
        app.router.add_get("/health", _health)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self.host, port).start()
        self.urls[service] = f"http://{_connect_host(self.host)}:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()  # releases hanging "timeout" handlers at once
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    def _handler(self, ep: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "invalid_request_error", "Body must be JSON")
            if not isinstance(body, dict):
                return _error(400, "invalid_request_error", "Body must be a JSON object")
            order = request.headers.get("X-Demo-Order")
            if order is None:
                self._counter += 1
                order = f"anon-{self._counter}"
            try:
                attempt = int(request.headers.get("X-Demo-Attempt") or request.headers.get("X-Seamline-Attempt") or 1)
            except ValueError:
                attempt = 1
            fault = plan_fault(self.seed, self.failure_rate, ep.handoff, order, attempt)
            if fault:
                self.injections.append(Injection(ep.handoff, order, attempt, fault, request.headers.get("X-Run-ID", "")))
            return await self._respond(ep, body, order, attempt, fault)

        return handle

    async def _respond(
        self, ep: Endpoint, body: dict[str, Any], order: str, attempt: int, fault: str | None
    ) -> web.StreamResponse:
        if fault == "timeout":
            assert self._stopping is not None and self.hanging is not None
            self.hanging.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.hang_s)
            return _error(504, "timeout", "gave up")
        if fault == "slow":
            await asyncio.sleep(slow_delay(self.seed, ep.handoff, order, attempt, self.slow_s))
        if fault == "lost_answer":
            await asyncio.sleep(LOST_ANSWER_S)
        if fault == "server_error":
            return _error(500, "api_error", "Internal server error; the request may be retried")
        if fault == "rate_limited":
            return _error(429, "rate_limit_error", "Too many requests; slow down", headers={"Retry-After": "2"})
        if fault == "auth_expired":
            return web.json_response(
                {"error": "invalid_token", "error_description": "The access token expired"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'},
            )
        status, payload = RESPONDERS[ep.handoff](body, order, attempt, fault)
        return web.json_response(payload, status=status)


def _connect_host(host: str) -> str:
    """Where a client on this machine reaches a listener bound on `host`."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status, headers=headers)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _contact(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    contact = {
        "id": _id("ct", order, body.get("email")),
        "object": "contact",
        "email": body.get("email"),
        "name": body.get("name"),
        "company": body.get("company"),
        "lifecycle_stage": "customer",
        "owner_id": "usr_4f1c9a",
        "created_at": _now(),
    }
    if fault == "drop_field":
        del contact["email"]  # the CRM "accepted" the contact but lost its email
    return 201, contact


def _invoice(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    amount = body.get("amount")
    return 201, {
        "id": _id("in", order),
        "object": "invoice",
        "customer": body.get("customer"),
        "amount": amount,
        "currency": body.get("currency"),
        "status": "open",
        "due_date": (datetime.now(UTC) + timedelta(days=14)).date().isoformat(),
        "lines": [{"description": body.get("description", "Subscription"), "amount": amount, "quantity": 1}],
    }


def _charge(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    declined = fault == "declined"
    return 200, {
        "id": _id("ch", order, attempt),
        "object": "charge",
        "invoice": body.get("invoice"),
        "amount": body.get("amount"),
        "currency": body.get("currency"),
        "status": "declined" if declined else "succeeded",
        "failure_code": "card_declined" if declined else None,
        "failure_message": "Your card has insufficient funds." if declined else None,
        "created_at": _now(),
    }


def _refund(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    return 200, {
        "id": _id("re", order),
        "object": "refund",
        "charge": body.get("charge"),
        "amount": body.get("amount"),
        "status": "succeeded",
        "reason": body.get("reason", "requested_by_customer"),
    }


def _account(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    return 201, {
        "id": _id("acct", order),
        "customer": body.get("customer"),
        "plan": body.get("plan"),
        "status": "active",
        "region": "eu-west-1",
        "seats": body.get("seats", 5),
        "created_at": _now(),
    }


def _message(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    return 202, {"id": _id("msg", order, attempt), "to": body.get("to"), "template": body.get("template"), "status": "queued"}


def _updated(body: dict[str, Any], order: str, attempt: int, fault: str | None) -> tuple[int, dict[str, Any]]:
    return 200, {**body, "updated_at": _now()}


RESPONDERS: dict[str, Callable[[dict[str, Any], str, int, str | None], tuple[int, dict[str, Any]]]] = {
    "crm.create_contact": _contact,
    "billing.create_invoice": _invoice,
    "billing.charge": _charge,
    "billing.refund": _refund,
    "provisioning.create_account": _account,
    "email.send_welcome": _message,
    "crm.update_contact": _updated,
    "billing.update_customer": _updated,
}


async def start_mocks(
    seed: int = 7, failure_rate: float = 0.2, *, hang_s: float = 30.0, slow_s: tuple[float, float] = (0.15, 0.45)
) -> tuple[dict[str, str], Callable[[], Awaitable[None]]]:
    """Start the four mocks; returns ({service: base URL}, async stop). Use `MockFleet` to see the injections."""
    fleet = MockFleet(seed=seed, failure_rate=failure_rate, hang_s=hang_s, slow_s=slow_s)
    urls = await fleet.start()
    return urls, fleet.stop
