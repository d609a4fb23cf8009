"""`seamline trace` / `seamline runs` rendering from admin-API JSON, with and without colour."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import socket
from datetime import timedelta

import pytest
from aiohttp import web
from rich.console import Console
from support.clock import utc_now
from support.servers import serve

from seamline.read import terminal

STARTED = utc_now()
RUN = {
    "run_id": "order-0007-ab12cd",
    "summary": {
        "first_ts": STARTED.isoformat(),
        "duration_ms": 1500.0,
        "handoffs": 3,
        "failed": 2,
        "worst_outcome": "transport_error",
        "error_classes": ["contract", "timeout"],
        "trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"],
    },
    "handoffs": [
        {
            "handoff": "crm.create_contact",
            "method": "POST",
            "url": "http://127.0.0.1:5/v1/contacts?x=1",
            "status": 201,
            "offset_ms": 0.0,
            "duration_ms": 40.0,
            "outcome": "silent_failure",
            "error_class": "contract",
            "attempt": 1,
            "violations": ["echo:missing:email", "schema:/email:required"],
            "external_ids": {"contact_id": "ct_1"},
            "request_headers": {"authorization": "[REDACTED]"},
            "response_headers": {},
            "request_body": '{"email":"a@example.com"}',
            "response_body": '{"id":"ct_1"}',
        },
        {
            "handoff": "billing.create_invoice",
            "method": "POST",
            "url": "http://127.0.0.1:6/v1/invoices",
            "status": 201,
            "offset_ms": 50.0,
            "duration_ms": 30.0,
            "outcome": "ok",
            "error_class": "none",
            "attempt": 2,
        },
        {
            "handoff": "billing.charge",
            "method": "POST",
            "url": "http://127.0.0.1:6/v1/charges",
            "status": 0,
            "offset_ms": 100.0,
            "duration_ms": 1400.0,
            "outcome": "transport_error",
            "error_class": "timeout",
            "attempt": 1,
            "error_detail": "upstream read timed out after 1.5s",
            "response_body": "\x1b[31mgotcha\x1b]0;title\x07",
        },
    ],
}
LISTING = {
    "runs": [
        {
            "run_id": "order-0007-ab12cd",
            "last_ts": (STARTED + timedelta(seconds=1)).isoformat(),
            "handoffs": 3,
            "failed": 2,
            "worst_outcome": "transport_error",
            "error_classes": ["contract", "timeout"],
            "failed_handoffs": ["billing.charge", "crm.create_contact"],
            "duration_ms": 1500.0,
        },
    ],
    "count": 1,
}


def _console(colour: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=colour, color_system="standard" if colour else None, width=200), out


def test_trace_without_colour_is_plain_text_timeline():
    console, out = _console(False)
    terminal.render_run(RUN, console)
    text = out.getvalue()
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert "order-0007-ab12cd" in lines[0] and "transport_error" in lines[0] and "3 handoffs" in lines[0]
    row = next(line for line in lines if "billing.charge" in line and "POST" in line)
    assert "+100ms" in row and "1.40s" in row and "timeout" in row and "—" in row  # no status: an em dash
    assert "POST /v1/contacts?x=1" in text
    assert "billing.create_invoice #2" in text  # retried attempt
    assert "violations: echo:missing:email, schema:/email:required" in text
    assert "ids: contact_id=ct_1" in text
    assert 'ct_1"}' not in text  # bodies only with --bodies


def test_trace_with_colour_styles_outcomes():
    console, out = _console(True)
    terminal.render_run(RUN, console)
    text = out.getvalue()
    assert "\x1b[" in text
    assert "\x1b[1;35msilent_failure" in text  # bold magenta
    assert "\x1b[1;31mtransport_error" in text  # bold red


def test_duration_bars_are_placed_by_offset_and_width():
    assert terminal.duration_bar(0, 750, 1500, width=20) == "█" * 10 + " " * 10
    assert terminal.duration_bar(750, 1, 1500, width=20) == " " * 10 + "█" + " " * 9
    assert terminal.duration_bar(1500, 0, 1500, width=20) == " " * 19 + "█"
    console, out = _console(False)
    terminal.render_run(RUN, console)
    bars = [line for line in out.getvalue().splitlines() if "█" in line]
    assert len(bars) == 3
    starts = [line.index("█") for line in bars]
    assert starts[0] < starts[1] < starts[2]


def test_bodies_are_shown_and_terminal_escapes_neutralised():
    console, out = _console(True)
    terminal.render_run(RUN, console, bodies=True)
    text = out.getvalue()
    assert '"email": "a@example.com"' in text and "authorization: [REDACTED]" in text
    assert "\\x1b[31mgotcha\\x1b]0;title\\x07" in text
    assert "\x1b]0;" not in text and "\x07" not in text


def test_runs_listing():
    console, out = _console(False)
    terminal.render_runs(LISTING, console)
    text = out.getvalue()
    assert "order-0007-ab12cd" in text and "contract, timeout" in text and "billing.charge, crm.create_contact" in text
    console, out = _console(False)
    terminal.render_runs({"runs": []}, console)
    assert "No runs match." in out.getvalue()


REFUSED_RUN = {
    "run_id": "order-0008-cd34ef",
    "summary": {
        "first_ts": STARTED.isoformat(),
        "duration_ms": 60.0,
        "handoffs": 2,
        "failed": 1,
        "refused": 1,
        "worst_outcome": "refused",
        "error_classes": ["unknown_upstream"],
        "trace_ids": [],
    },
    "handoffs": [
        {
            "handoff": "crm.create_contact",
            "method": "POST",
            "url": "http://127.0.0.1:5/v1/contacts",
            "status": 201,
            "offset_ms": 0.0,
            "duration_ms": 40.0,
            "outcome": "ok",
            "error_class": "none",
            "attempt": 1,
        },
        {
            "handoff": "",
            "method": "POST",
            "url": "",
            "status": 404,
            "offset_ms": 50.0,
            "duration_ms": 1.0,
            "outcome": "refused",
            "error_class": "unknown_upstream",
            "attempt": 1,
            "error_detail": "no upstream named 'biling' is configured; the first path segment must be an upstream name",
        },
    ],
}


def test_trace_labels_a_refused_handoff_as_seamlines_own_answer():
    console, out = _console(False)
    terminal.render_run(REFUSED_RUN, console)
    text = out.getvalue()
    lines = text.splitlines()
    assert "refused" in lines[0] and "1 failed (1 refused)" in lines[0]
    row = next(line for line in lines if "404" in line)
    assert "refused" in row and "unknown_upstream" in row
    assert "refused by Seamline (unknown_upstream), not an upstream failure" in text
    assert "no upstream named 'biling'" in text


def test_trace_with_colour_gives_refused_its_own_style_not_the_upstreams_red():
    console, out = _console(True)
    terminal.render_run(REFUSED_RUN, console)
    text = out.getvalue()
    assert "\x1b[36mrefused" in text  # cyan
    assert "\x1b[36munknown_upstream" in text and "\x1b[31munknown_upstream" not in text
    assert re.search(r"\x1b\[36m *404", text) and not re.search(r"\x1b\[31m *404", text)
    assert "\x1b[31mrefused" not in text and "\x1b[1;31mrefused" not in text


def test_runs_listing_labels_runs_failed_only_by_refusals():
    listing = {
        "runs": [
            {
                "run_id": "order-0008-cd34ef",
                "last_ts": (STARTED + timedelta(seconds=1)).isoformat(),
                "handoffs": 2,
                "failed": 1,
                "refused": 1,
                "worst_outcome": "refused",
                "error_classes": ["unknown_upstream"],
                "failed_handoffs": [""],
                "duration_ms": 60.0,
            },
            {
                "run_id": "order-0009-ef56ab",
                "last_ts": STARTED.isoformat(),
                "handoffs": 3,
                "failed": 2,
                "refused": 1,
                "worst_outcome": "transport_error",
                "error_classes": ["timeout", "too_large"],
                "failed_handoffs": ["billing.charge"],
                "duration_ms": 900.0,
            },
        ],
        "count": 2,
    }
    console, out = _console(False)
    terminal.render_runs(listing, console)
    rows = out.getvalue().splitlines()
    only = next(line for line in rows if "order-0008" in line)
    assert "1 (1 refused)" in only and "refused" in only.split("1 (1 refused)")[1] and "unknown_upstream" in only
    mixed = next(line for line in rows if "order-0009" in line)
    assert "2 (1 refused)" in mixed and "transport_error" in mixed
    console, out = _console(True)
    terminal.render_runs(listing, console)
    text = out.getvalue()
    assert "\x1b[36m1 (1 refused)" in text and "\x1b[31m2 (1 refused)" in text  # all refusals: not red


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="seamline")
    terminal.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


@pytest.fixture
async def admin():
    seen: list[dict] = []

    async def run(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        if request.match_info["run_id"] != RUN["run_id"]:
            return web.json_response(
                {"type": "x", "title": "Run not found", "status": 404, "detail": "no handoffs recorded for run 'nope'"},
                status=404,
                content_type="application/problem+json",
            )
        return web.json_response(RUN)

    async def runs(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        if request.query.get("since") == "bad":
            return web.json_response(
                {"detail": "since: 'bad' is not a duration"}, status=400, content_type="application/problem+json"
            )
        return web.json_response(LISTING)

    app = web.Application()
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{run_id}", run)
    async with serve(app) as base:
        yield base, seen


async def _cmd(args: argparse.Namespace) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(args.func, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_trace_command_reads_the_admin_api(admin):
    base, seen = admin
    code, out, _ = await _cmd(_parse("trace", RUN["run_id"], "--admin-url", base))
    assert code == 0 and "billing.charge" in out and "\x1b[" not in out
    assert seen[-1] == {"bodies": "false"}
    code, out, _ = await _cmd(_parse("trace", RUN["run_id"], "--admin-url", base, "--json"))
    assert code == 0 and json.loads(out) == RUN


async def test_trace_unknown_run_exits_1(admin):
    base, _ = admin
    code, out, err = await _cmd(_parse("trace", "nope", "--admin-url", base))
    assert code == 1 and out == "" and "no handoffs recorded for run 'nope'" in err


async def test_runs_command_passes_filters(admin, monkeypatch):
    base, seen = admin
    monkeypatch.setenv("SEAMLINE_ADMIN_URL", base)
    code, out, _ = await _cmd(_parse("runs", "--failed", "--since", "2h", "--limit", "5", "--outcome", "http_error"))
    assert code == 0 and "order-0007-ab12cd" in out
    assert seen[-1] == {"since": "2h", "limit": "5", "failed": "true", "outcome": "http_error"}
    code, _, err = await _cmd(_parse("runs", "--since", "bad"))
    assert code == 2 and "since: 'bad'" in err


async def test_json_that_is_not_an_object_is_a_clear_error_with_exit_2():
    async def not_a_run(request: web.Request) -> web.Response:
        return web.json_response(["not", "a", "run"])

    app = web.Application()
    app.router.add_get("/api/runs/{run_id}", not_a_run)
    async with serve(app) as base:
        code, out, err = await _cmd(_parse("trace", "r1", "--admin-url", base))
    assert code == 2 and out == ""
    assert "JSON that is not an object" in err and f"is {base} a Seamline admin listener?" in err


async def test_unreachable_sidecar_is_a_clear_error_with_exit_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = await _cmd(_parse("trace", "r1", "--admin-url", f"http://127.0.0.1:{port}"))
    assert code == 2 and out == ""
    assert f"cannot reach the Seamline admin API at http://127.0.0.1:{port}" in err and "--admin-url" in err
