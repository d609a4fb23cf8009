"""The demo's workflow app: N order runs through Seamline, each create contact → invoice → charge →
provision → welcome email, one run ID each.

It behaves like a typical integration: it trusts HTTP status codes (so a 200 "declined" payment or a
contact without its email slips through — Seamline's contracts are what catch those), retries
`safe_to_repeat` steps once on 5xx or a timeout with `X-Seamline-Attempt: 2`, retries the charge only after its own
(short) timeout, once, with the same Idempotency-Key (through Seamline the duplicate guard answers it with the first
charge's response instead of charging again; straight at the mocks it would charge twice), and refunds a charge
whose account could not be provisioned.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from seamline import outcomes as o
from seamline.demo.mocks import BY_HANDOFF

DEFAULT_ADMIN_URL = "http://127.0.0.1:9090"
SAFETY = {
    "crm.create_contact": "safe_to_repeat",
    "billing.create_invoice": "safe_to_repeat",
    "billing.charge": "never_repeat",
    "billing.refund": "safe_once",
    "provisioning.create_account": "safe_to_repeat",
    "email.send_welcome": "safe_once",
    "crm.update_contact": "safe_to_repeat",
    "billing.update_customer": "safe_to_repeat",
}
# The seed's incident: two sync workflows that each react to the other's update ran 847 times before anyone noticed.
LOOP_ROUNDS = 847
PLANS = ("starter", "team", "business")
# The app's own timeout on the charge (shorter than the upstream's answer to a "lost_answer" charge) and its pause
# before the one retry after it, long enough for the first call to have finished (else: 409 idempotency-in-flight).
CHARGE_TIMEOUT_S = 0.6
CHARGE_RETRY_AFTER_S = 1.0
FIRST = ("Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Tim", "Radia")
LAST = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Berners-Lee", "Perlman")


class StepFailed(Exception):
    def __init__(self, handoff: str, status: int, error_class: str, detail: str = "") -> None:
        super().__init__(f"{handoff}: {status} {error_class} {detail}".strip())
        self.handoff, self.status, self.error_class, self.detail = handoff, status, error_class, detail


@dataclass
class RunResult:
    """What the app saw of one run."""

    run_id: str
    order: str
    ok: bool = False
    failed_step: str | None = None
    status: int = 0
    error_class: str | None = None  # as the app could tell from the HTTP exchange
    calls: list[tuple[str, int, int]] = field(default_factory=list)  # (handoff, attempt, status)
    refunded: bool = False
    needs_reconciliation: bool = False  # a never_repeat step whose outcome is unknown
    charge_replayed: bool = False  # the charge's retry was answered by Seamline's duplicate guard (not charged again)


@dataclass
class LoopResult:
    """What the sync loop's two workflows saw: how many calls they made and what stopped them."""

    run_id: str
    calls: int = 0
    rounds: int = 0  # full round trips (CRM update → billing update)
    stopped_by: str | None = None  # the error class of the answer that ended it (loop_suspected); None: ran out
    status: int = 0


@dataclass
class DemoSummary:
    runs: int
    ok: int
    failed: int
    failed_by_class: dict[str, int]
    calls: int
    silent_failures_caught: int | None  # None: the store was not read (no admin URL)
    silent_unnoticed: int | None  # of those, runs the app counted as ok
    silent_by_handoff: dict[str, int]
    seamline_failed_runs: int | None
    trace_commands: list[str]
    run_pages: list[str]
    results: list[RunResult]
    elapsed_s: float
    admin_url: str | None = None
    loop: LoopResult | None = None  # the sync loop (through Seamline only)
    recovery: dict[str, int] | None = None  # the recovery metrics Seamline recorded (GET /api/recovery), when read

    def render(self, console: Console) -> None:
        """Print the end-of-demo summary with the commands to trace failed runs."""
        console.print()
        console.print(
            Text(f"Seamline demo: {self.runs} order runs, {self.calls} handoffs in {self.elapsed_s:.1f}s", style="bold")
        )
        console.print(Text(f"  runs ok (as the app saw them): {self.ok}", style="green"))
        console.print(Text(f"  runs failed:                   {self.failed}", style="red" if self.failed else ""))
        for cls, n in sorted(self.failed_by_class.items(), key=lambda kv: (-kv[1], kv[0])):
            console.print(Text(f"    {cls:<22} {n}"))
        if self.silent_failures_caught is not None:
            console.print(
                Text(
                    f"  silent failures caught:        {self.silent_failures_caught} runs "
                    f"({self.silent_unnoticed} of them counted as ok by the app: HTTP 2xx, but the contract failed)",
                    style="bold magenta" if self.silent_failures_caught else "",
                )
            )
            for h, n in sorted(self.silent_by_handoff.items()):
                console.print(Text(f"    {h:<28} {n}"))
        if self.loop is not None:
            lp = self.loop
            if lp.stopped_by:
                line = (
                    f"  sync loop stopped:             after {lp.calls} calls ({lp.rounds} of {LOOP_ROUNDS} round trips; "
                    f"{lp.status} {lp.stopped_by.replace('_', '-')}): seamline trace {lp.run_id}"
                )
            else:
                line = f"  sync loop ran unchecked:       {lp.calls} calls ({lp.rounds} round trips)"
            console.print(Text(line, style="bold yellow"))
        if self.recovery is not None:
            rc = self.recovery
            replayed = sum(1 for r in self.results if r.charge_replayed)
            console.print(Text("  recovery (as Seamline recorded it):", style="bold"))
            for label, value, note in (
                ("duplicates prevented", rc["duplicates_prevented"],
                 f"{replayed} retried charge(s) answered from the first, not charged again" if replayed else ""),
                ("retries recovered", rc["retries_recovered"], "retries that completed ok"),
                ("pauses", rc["pauses"], "409 outcome-unknown: a charge that may have happened, not repeated"),
                ("circuit opens", rc["circuit_opens"], ""),
                ("loops stopped", rc["loops_stopped"], f"{rc['loop_flagged']} call(s) flagged loop_suspected"),
            ):  # fmt: skip
                console.print(Text(f"    {label:<22} {value}" + (f"  ({note})" if note else "")))
        if self.trace_commands:
            console.print(Text("\nTrace a failed run:", style="bold"))
            for cmd in self.trace_commands:
                console.print(Text(f"  {cmd}", style="cyan"))
        if self.run_pages:
            console.print(Text("Or open its run page:", style="bold"))
            for url in self.run_pages:
                console.print(Text(f"  {url}", style="cyan"))


def classify(resp: httpx.Response) -> str:
    """The error class an app can tell from a failed response (Seamline's problem+json says it outright)."""
    if resp.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            cls = resp.json().get("error_class")
        except ValueError:
            cls = None
        if cls:
            return str(cls)
    if resp.status_code == 429:
        return o.RATE_LIMITED
    if resp.status_code in (401, 403):
        return o.AUTH_EXPIRED if 'error="invalid_token"' in resp.headers.get("www-authenticate", "") else o.AUTH
    if resp.status_code >= 500:
        return o.SERVER_ERROR
    return o.CLIENT_ERROR


class Workflow:
    """One order run: the five steps, with retries and compensation as each step's safety allows."""

    def __init__(self, http: httpx.AsyncClient, base_urls: dict[str, str], run_id: str, order: int, seed: int) -> None:
        self.http, self.base_urls, self.order = http, base_urls, order
        self.result = RunResult(run_id=run_id, order=str(order))
        self.trace_id = uuid.uuid4().hex  # one trace per run: every call is a child of the app's run span
        first, last = FIRST[(order + seed) % len(FIRST)], LAST[(order * 7 + seed) % len(LAST)]
        self.name = f"{first} {last}"
        self.email = f"{first.lower()}.{last.lower()}+{order}@example.com"
        self.plan = PLANS[order % len(PLANS)]
        self.amount = {"starter": 1900, "team": 4900, "business": 9900}[self.plan]

    async def step(self, handoff: str, body: dict[str, Any]) -> dict[str, Any]:
        ep = BY_HANDOFF[handoff]
        url = f"{self.base_urls[ep.service]}{ep.path}"
        charge = handoff == "billing.charge"
        max_attempts = 2 if SAFETY[handoff] == "safe_to_repeat" or charge else 1
        timeout = CHARGE_TIMEOUT_S if charge else httpx.USE_CLIENT_DEFAULT
        for attempt in range(1, max_attempts + 1):
            headers = {
                "X-Run-ID": self.result.run_id,
                "X-Seamline-App": "demo-orders",
                "X-Demo-Order": self.result.order,
                "X-Demo-Attempt": str(attempt),
                "Idempotency-Key": f"{self.result.run_id}:{handoff}",
                "traceparent": f"00-{self.trace_id}-{uuid.uuid4().hex[:16]}-01",
            }
            if attempt > 1:
                headers["X-Seamline-Attempt"] = str(attempt)
            try:
                resp = await self.http.request(ep.method, url, json=body, headers=headers, timeout=timeout)
            except httpx.TimeoutException as e:
                self.result.calls.append((handoff, attempt, 0))
                failure = StepFailed(handoff, 0, o.TIMEOUT, str(e))
                if charge and attempt < max_attempts:
                    await asyncio.sleep(CHARGE_RETRY_AFTER_S)  # the app's backoff before its one retry of the charge
                    continue
            except httpx.TransportError as e:
                self.result.calls.append((handoff, attempt, 0))
                failure = StepFailed(handoff, 0, o.CONNECT, str(e))
            else:
                self.result.calls.append((handoff, attempt, resp.status_code))
                if resp.headers.get("Seamline-Replayed") == "true":
                    self.result.charge_replayed = True
                if resp.is_success:
                    try:
                        data = resp.json()
                    except ValueError:
                        data = {}
                    return data if isinstance(data, dict) else {}
                failure = StepFailed(handoff, resp.status_code, classify(resp), resp.text[:200])
                if resp.status_code < 500 or charge:
                    raise failure  # 4xx: repeating the same call cannot help; a charge is retried after a timeout only
            if attempt == max_attempts:
                raise failure
        raise AssertionError("unreachable")

    async def run(self) -> RunResult:
        r = self.result
        charge: dict[str, Any] | None = None
        try:
            contact = await self.step("crm.create_contact", {"email": self.email, "name": self.name, "company": "Example GmbH"})
            invoice = await self.step(
                "billing.create_invoice",
                {
                    "customer": contact.get("id"),
                    "amount": self.amount,
                    "currency": "eur",
                    "description": f"{self.plan} plan",
                },
            )
            try:
                charge = await self.step(
                    "billing.charge",
                    {
                        "invoice": invoice.get("id"),
                        "amount": self.amount,
                        "currency": "eur",
                        "customer": contact.get("id"),
                    },
                )
            except StepFailed as e:
                # never_repeat: a lost answer may still have charged the card; reconcile, do not retry.
                r.needs_reconciliation = e.status == 0 or e.status >= 500
                raise
            try:
                await self.step("provisioning.create_account", {"customer": contact.get("id"), "plan": self.plan, "seats": 5})
            except StepFailed:
                await self._refund(charge)
                raise
            await self.step(
                "email.send_welcome", {"to": self.email, "template": "welcome", "vars": {"name": self.name, "plan": self.plan}}
            )
            r.ok = True
        except StepFailed as e:
            r.failed_step, r.status, r.error_class = e.handoff, e.status, e.error_class
        return r

    async def _refund(self, charge: dict[str, Any]) -> None:
        try:
            await self.step(
                "billing.refund", {"charge": charge.get("id"), "amount": self.amount, "reason": "provisioning_failed"}
            )
            self.result.refunded = True
        except StepFailed:
            self.result.needs_reconciliation = True


class SyncLoop:
    """Two workflows that each react to the other's update: CRM → billing sync updates the billing customer, whose
    webhook makes the billing → CRM sync update the contact, whose webhook... One run ID throughout (the webhooks carry
    it), up to LOOP_ROUNDS round trips, or until an answer is not a success (Seamline's 429 loop-suspected)."""

    def __init__(self, http: httpx.AsyncClient, base_urls: dict[str, str], run_id: str) -> None:
        self.http, self.base_urls = http, base_urls
        self.result = LoopResult(run_id=run_id)

    async def run(self) -> LoopResult:
        r = self.result
        sides = (("billing.update_customer", "/v1/customers/cus_sync"), ("crm.update_contact", "/v1/contacts/ct_sync"))
        for n in range(LOOP_ROUNDS):
            for handoff, path in sides:
                ep = BY_HANDOFF[handoff]
                resp = await self.http.request(
                    ep.method, f"{self.base_urls[ep.service]}{path}", json={"sync_version": n + 1},
                    headers={"X-Run-ID": r.run_id, "X-Seamline-App": "demo-sync", "X-Demo-Order": "sync"},
                )  # fmt: skip
                r.calls += 1
                if not resp.is_success:
                    r.stopped_by, r.status = classify(resp), resp.status_code
                    return r
            r.rounds += 1
        return r


class SidecarUnavailable(Exception):
    """An external sidecar did not answer within the wait."""


async def wait_for_sidecar(proxy_url: str, admin_url: str | None, timeout_s: float, *, interval_s: float = 0.5) -> str:
    """Wait (bounded) until the admin `/readyz` says ready or, without an admin URL, the proxy port accepts.

    Returns what answered; raises `SidecarUnavailable` with the last problem seen when `timeout_s` runs out.
    """
    deadline = time.monotonic() + timeout_s
    target = f"{admin_url.rstrip('/')}/readyz" if admin_url else proxy_url
    last = "no answer"
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
        while True:
            if admin_url:
                try:
                    resp = await http.get(target)
                except httpx.TransportError as e:
                    last = f"{type(e).__name__}: {e}".rstrip(": ")
                else:
                    if resp.status_code == 200:
                        return target
                    last = f"HTTP {resp.status_code} {resp.text[:200]}"
            else:
                last = await _try_connect(proxy_url)
                if not last:
                    return target
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SidecarUnavailable(f"{target} did not answer within {timeout_s:g}s (last: {last})")
            await asyncio.sleep(min(interval_s, remaining))


async def _try_connect(url: str) -> str:
    """'' when a TCP connection to the URL's host and port succeeds, else why not (no HTTP request: nothing recorded)."""
    u = httpx.URL(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(u.host, port), 2.0)
    except (OSError, TimeoutError) as e:
        return f"{type(e).__name__}: {e}".rstrip(": ")
    writer.close()
    await writer.wait_closed()
    return ""


async def _wait_recorded(
    http: httpx.AsyncClient, admin_url: str, since: datetime, expected: int, deadline_s: float, admin_token: str | None = None
) -> list[dict[str, Any]]:
    """Poll the admin API (bounded) until every call is recorded; returns the run listing."""
    params = {"since": since.isoformat(), "limit": "1000"}
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    deadline = time.monotonic() + deadline_s
    runs: list[dict[str, Any]] = []
    while True:
        resp = await http.get(f"{admin_url}/api/runs", params=params, headers=headers)
        resp.raise_for_status()
        runs = resp.json()["runs"]
        if sum(int(r["handoffs"]) for r in runs) >= expected or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.2)


async def run_demo(
    runs: int = 40,
    seed: int = 7,
    failure_rate: float = 0.2,
    proxy_url: str | None = None,
    *,
    admin_url: str | None = None,
    upstream_urls: dict[str, str] | None = None,
    concurrency: int = 8,
    request_timeout_s: float = 10.0,
    flush: Callable[[], Awaitable[Any]] | None = None,
    console: Console | None = None,
    progress: bool = True,
    run_prefix: str | None = None,
    sync_loop: bool | None = None,
    client_token: str | None = None,
    admin_token: str | None = None,
) -> DemoSummary:
    """Drive `runs` order runs through the proxy (`<proxy_url>/<upstream>`), or straight at `upstream_urls`.

    With `admin_url`, the summary also reads Seamline's record (after `flush`, if given) to count the
    silent failures the app did not notice. `failure_rate` and `seed` are the mocks' (for the header line).
    `sync_loop` (default: when going through Seamline) also runs the two sync workflows that loop (`SyncLoop`).
    `client_token` goes in X-Seamline-Token on every call (server.client_tokens), `admin_token` to the admin API.
    """
    if proxy_url is None and upstream_urls is None:
        raise ValueError("give proxy_url (through Seamline) or upstream_urls (straight at the mocks)")
    base_urls = upstream_urls or {s: f"{proxy_url.rstrip('/')}/{s}" for s in ("crm", "billing", "provisioning", "email")}  # type: ignore[union-attr]
    console = console or Console(stderr=True)
    prefix = run_prefix or uuid.uuid4().hex[:6]
    started = datetime.now(UTC)
    t0 = time.monotonic()
    limiter = asyncio.Semaphore(max(1, concurrency))
    results: list[RunResult] = []
    bar = Progress(
        TextColumn("[bold]orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    )
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    headers = {"X-Seamline-Token": client_token} if client_token else {}
    async with httpx.AsyncClient(timeout=request_timeout_s, limits=limits, trust_env=False, headers=headers) as http:
        with bar:
            task = bar.add_task("orders", total=runs, failed=0)
            failed = 0

            async def one(i: int) -> None:
                nonlocal failed
                async with limiter:
                    result = await Workflow(http, base_urls, f"order-{i:04d}-{prefix}", i, seed).run()
                results.append(result)
                failed += 0 if result.ok else 1
                bar.update(task, advance=1, failed=failed)

            await asyncio.gather(*(one(i) for i in range(1, runs + 1)))
        loop = None
        if sync_loop if sync_loop is not None else proxy_url is not None:
            loop = await SyncLoop(http, base_urls, f"sync-loop-{prefix}").run()
        results.sort(key=lambda r: int(r.order))
        calls = sum(len(r.calls) for r in results) + (loop.calls if loop else 0)
        recorded: list[dict[str, Any]] | None = None
        recovery: dict[str, int] | None = None
        if admin_url:
            if flush is not None:
                await flush()
            recorded = await _wait_recorded(http, admin_url.rstrip("/"), started, calls, 15.0, admin_token)
            recovery = await _recovery(http, admin_url.rstrip("/"), started, admin_token)
    summary = summarize(results, recorded, admin_url=admin_url, elapsed_s=time.monotonic() - t0)
    summary.loop = loop
    summary.recovery = recovery if admin_url else None
    return summary


async def _recovery(http: httpx.AsyncClient, admin_url: str, since: datetime, admin_token: str | None) -> dict[str, int] | None:
    """The recovery metrics of this demo's window; None when the sidecar does not offer them (an older one)."""
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    resp = await http.get(f"{admin_url}/api/recovery", params={"since": since.isoformat()}, headers=headers)
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    metrics = resp.json().get("metrics")
    return {str(k): int(v) for k, v in metrics.items()} if isinstance(metrics, dict) else None


def summarize(
    results: list[RunResult], recorded: list[dict[str, Any]] | None, *, admin_url: str | None, elapsed_s: float
) -> DemoSummary:
    """The demo's summary from what the app saw and (when read) what Seamline recorded."""
    failed_by_class = Counter((r.error_class or "unknown") for r in results if not r.ok)
    if recorded is not None:  # the order runs' record (the sync loop has its own line)
        ours = {r.run_id for r in results}
        recorded = [r for r in recorded if r["run_id"] in ours]
    silent = silent_unnoticed = None
    silent_by_handoff: Counter[str] = Counter()
    if recorded is not None:
        app_ok = {r.run_id for r in results if r.ok}
        silent_runs = [r for r in recorded if r.get("silent_handoffs")]
        silent = len(silent_runs)
        silent_unnoticed = sum(1 for r in silent_runs if r["run_id"] in app_ok)
        silent_by_handoff.update(h for r in silent_runs for h in r["silent_handoffs"])
    # A few failed runs worth tracing: one per worst outcome first (silent failures included), then the app's failures.
    picks: list[str] = []
    seen_outcomes: set[str] = set()
    for r in recorded or []:
        if r.get("failed") and r["worst_outcome"] not in seen_outcomes:
            seen_outcomes.add(r["worst_outcome"])
            picks.append(r["run_id"])
    picks += [r.run_id for r in results if not r.ok and r.run_id not in picks]
    picks = picks[:3]
    base = admin_url.rstrip("/") if admin_url else None
    flag = "" if base in (None, DEFAULT_ADMIN_URL) else f" --admin-url {base}"
    return DemoSummary(
        runs=len(results),
        ok=sum(1 for r in results if r.ok),
        failed=sum(1 for r in results if not r.ok),
        failed_by_class=dict(failed_by_class),
        calls=sum(len(r.calls) for r in results),
        silent_failures_caught=silent,
        silent_unnoticed=silent_unnoticed,
        silent_by_handoff=dict(silent_by_handoff),
        seamline_failed_runs=None if recorded is None else sum(1 for r in recorded if r.get("failed")),
        trace_commands=[f"seamline trace {rid}{flag}" for rid in picks],
        run_pages=[f"{base}/runs/{rid}" for rid in picks] if base else [],
        results=results,
        elapsed_s=elapsed_s,
        admin_url=base,
    )
