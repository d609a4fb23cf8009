"""Route an app's HTTP calls through Seamline, carrying the current run ID and trace context.

    import seamline.client as sc

    async with sc.async_client("billing") as billing:          # -> http://127.0.0.1:8080/billing
        with sc.run("order-123"):
            await billing.post("/v1/charges", json={...})        # X-Run-ID: order-123, traceparent: …

The run ID lives in a context variable, so concurrent tasks each keep their own. httpx clients are
instrumented per instance with opentelemetry-instrumentation-httpx: with an OpenTelemetry SDK configured
in the app (or `tracer_provider=` given), each call is a client span and `traceparent` joins the app's trace.
"""

from __future__ import annotations

import contextvars
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx

DEFAULT_SIDECAR_URL = "http://127.0.0.1:8080"
RUN_ID_HEADER = "X-Run-ID"
APP_HEADER = "X-Seamline-App"

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("seamline_run_id", default=None)


@contextmanager
def run(run_id: str | None = None) -> Iterator[str]:
    """Make `run_id` (or a fresh one) the current run for every call made inside the block."""
    rid = run_id or f"run-{uuid.uuid4().hex}"
    token = _run_id.set(rid)
    try:
        yield rid
    finally:
        _run_id.reset(token)


def current_run_id() -> str | None:
    """The run ID set by the innermost `run()` block, if any."""
    return _run_id.get()


def sidecar_url(url: str | None = None) -> str:
    """`url`, else SEAMLINE_URL, else http://127.0.0.1:8080."""
    return (url or os.environ.get("SEAMLINE_URL") or DEFAULT_SIDECAR_URL).rstrip("/")


def _base_url(upstream: str | None, base_url: str | None, sidecar: str | None, proxy: str | None) -> str | None:
    if upstream is not None and base_url is not None:
        raise ValueError("give either upstream= (reverse mode through the sidecar) or base_url=, not both")
    if upstream is not None:
        if not upstream or "/" in upstream:
            raise ValueError(f"upstream must be a configured upstream name, got {upstream!r}")
        return f"{sidecar_url(sidecar)}/{upstream}"
    if base_url is not None:
        return base_url
    return None if proxy else sidecar_url(sidecar)


def _default_headers(headers: Any, app: str | None) -> httpx.Headers:
    h = httpx.Headers(headers or {})
    if app and APP_HEADER not in h:
        h[APP_HEADER] = app
    return h


def _hooks(kwargs: dict[str, Any], hook: Any) -> dict[str, list[Any]]:
    hooks = {k: list(v) for k, v in (kwargs.pop("event_hooks", None) or {}).items()}
    hooks.setdefault("request", []).insert(0, hook)
    return hooks


def _instrument(client: httpx.Client | httpx.AsyncClient, tracer_provider: Any, instrument: bool) -> None:
    if not instrument:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=tracer_provider)


def async_client(
    upstream: str | None = None,
    *,
    base_url: str | None = None,
    sidecar: str | None = None,
    proxy: str | None = None,
    run_id_header: str = RUN_ID_HEADER,
    app: str | None = None,
    tracer_provider: Any = None,
    instrument: bool = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` through Seamline.

    Reverse mode (default): `upstream="billing"` → base URL `<sidecar>/billing`; `base_url=` to give it whole.
    Forward mode: `proxy="http://127.0.0.1:8080"` with the API's real `base_url` (plain http:// only:
    https:// goes through a CONNECT tunnel the sidecar cannot read, so no run ID and no payloads).
    Other keyword arguments go to httpx.
    """

    async def add_run_id(request: httpx.Request) -> None:
        _set_run_id(request, run_id_header)

    url = _base_url(upstream, base_url, sidecar, proxy)
    client = httpx.AsyncClient(
        base_url=url or "",
        proxy=proxy,
        headers=_default_headers(kwargs.pop("headers", None), app),
        event_hooks=_hooks(kwargs, add_run_id),
        **kwargs,
    )
    _instrument(client, tracer_provider, instrument)
    return client


def _set_run_id(request: httpx.Request, header: str) -> None:
    """The request hook both httpx clients share: the current run ID, unless the caller set one."""
    rid = _run_id.get()
    if rid is not None and header not in request.headers:
        request.headers[header] = rid


def client(
    upstream: str | None = None,
    *,
    base_url: str | None = None,
    sidecar: str | None = None,
    proxy: str | None = None,
    run_id_header: str = RUN_ID_HEADER,
    app: str | None = None,
    tracer_provider: Any = None,
    instrument: bool = True,
    **kwargs: Any,
) -> httpx.Client:
    """The synchronous twin of `async_client` (same arguments)."""

    def add_run_id(request: httpx.Request) -> None:
        _set_run_id(request, run_id_header)

    url = _base_url(upstream, base_url, sidecar, proxy)
    c = httpx.Client(
        base_url=url or "",
        proxy=proxy,
        headers=_default_headers(kwargs.pop("headers", None), app),
        event_hooks=_hooks(kwargs, add_run_id),
        **kwargs,
    )
    _instrument(c, tracer_provider, instrument)
    return c


def trace_config(run_id_header: str = RUN_ID_HEADER) -> aiohttp.TraceConfig:
    """An aiohttp TraceConfig adding the current run ID and the current OpenTelemetry context (traceparent)."""
    from opentelemetry import propagate

    async def on_request_start(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        rid = _run_id.get()
        if rid is not None and run_id_header not in params.headers:
            params.headers[run_id_header] = rid
        if "traceparent" not in params.headers:
            propagate.inject(params.headers)

    tc = aiohttp.TraceConfig()
    tc.on_request_start.append(on_request_start)
    return tc


def aiohttp_session(
    upstream: str | None = None,
    *,
    base_url: str | None = None,
    sidecar: str | None = None,
    proxy: str | None = None,
    run_id_header: str = RUN_ID_HEADER,
    app: str | None = None,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """An `aiohttp.ClientSession` through Seamline (create it inside a running event loop).

    With `upstream="billing"` the base URL is `<sidecar>/billing/`: request paths are then relative
    (`session.post("v1/charges")`), as aiohttp joins them to a base URL with a path.
    """
    url = _base_url(upstream, base_url, sidecar, proxy)
    if url and upstream is not None:
        url += "/"
    headers = dict(kwargs.pop("headers", None) or {})
    if app:
        headers.setdefault(APP_HEADER, app)
    trace_configs = [trace_config(run_id_header), *(kwargs.pop("trace_configs", None) or [])]
    if proxy:
        kwargs["proxy"] = proxy
    return aiohttp.ClientSession(base_url=url, headers=headers, trace_configs=trace_configs, **kwargs)
