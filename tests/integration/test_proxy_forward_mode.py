"""Forward mode: http_proxy absolute-form requests and CONNECT tunnels to configured hosts only."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import subprocess

import aiohttp
import pytest
import requests
from aiohttp import web
from conftest import proxy_config
from support.tls import self_signed

from seamline.config.models import Config


async def test_absolute_form_request_to_a_configured_host_is_proxied(upstream, make_sidecar):
    sc = await make_sidecar(
        proxy_config({"billing": upstream.url}, handoffs={"billing.list": {"upstream": "billing", "match": "GET /v1/items"}})
    )
    async with aiohttp.ClientSession() as s:
        async with s.get(upstream.url + "/v1/items?page=2", proxy=sc.proxy_url, headers={"X-Run-ID": "fwd-1"}) as r:
            assert r.status == 200
            assert r.headers["X-Run-ID"] == "fwd-1"
    assert upstream.last.raw_path == "/v1/items?page=2"
    assert upstream.last.header("X-Run-ID") == "fwd-1"
    assert upstream.last.header("traceparent")


async def test_connect_tunnel_relays_bytes_untouched(make_sidecar):
    received = bytearray()

    async def echo(reader, writer):
        while data := await reader.read(65536):
            received.extend(data)
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sc = await make_sidecar(proxy_config({"secure": f"https://127.0.0.1:{port}"}))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Run-ID: tun-1\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"X-Run-ID: tun-1" in head
        writer.write(b"\x16\x03\x01tls-bytes-as-is")
        got = await asyncio.wait_for(reader.readexactly(len(b"\x16\x03\x01tls-bytes-as-is")), 5)
        assert got == b"\x16\x03\x01TLS-BYTES-AS-IS"
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest == b""
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert bytes(received) == b"\x16\x03\x01tls-bytes-as-is"


# Several upstreams on one host:port, told apart by base path; host spellings. Requests go through the proxy in
# absolute form, as `requests` (proxies=) and curl (-x) send them.


def _config(upstreams: dict[str, str]) -> Config:
    """Loopback upstreams, each adding `X-Upstream: <name>` so the receiving app can tell which one was used."""
    cfg = proxy_config(upstreams)
    return cfg.model_copy(
        update={"upstreams": {n: u.model_copy(update={"headers": {"X-Upstream": n}}) for n, u in cfg.upstreams.items()}}
    )


def _get(proxy_url: str, url: str, **kw) -> requests.Response:
    with requests.Session() as s:
        s.trust_env = False  # the test's own proxies only, whatever the environment says
        return s.get(url, proxies={"http": proxy_url}, timeout=5, **kw)


async def _curl(proxy_url: str, url: str) -> tuple[int, bytes]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-x",
        proxy_url,
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err
    body, _, code = out.rpartition(b"\n")
    return int(code), body


async def test_longest_base_path_prefix_picks_the_upstream_and_the_path_is_kept(upstream, make_sidecar):
    # `up` is configured first: its base path must not be put in front of billing's requests.
    u = upstream.url
    sc = await make_sidecar(_config({"up": u + "/ok", "billing": u + "/api", "billing_v2": u + "/api/v2"}))
    cases = [
        ("/api/charges?x=1", "billing", "/api/charges?x=1"),
        ("/api", "billing", "/api/"),  # the base itself is the upstream's '/', as in reverse mode and before
        ("/api/v2/charges", "billing_v2", "/api/v2/charges"),
        ("/api/v2/", "billing_v2", "/api/v2/"),
        ("/api/v20", "billing", "/api/v20"),  # prefixes match whole segments only
        ("/ok/x", "up", "/ok/x"),
    ]
    for path, name, received in cases:
        r = await asyncio.to_thread(_get, sc.proxy_url, u + path, headers={"X-Run-ID": "fwd-2"})
        assert r.status_code == 200, (path, r.text)
        assert upstream.last.header("X-Upstream") == name, path
        assert upstream.last.path_qs == received
    code, _ = await _curl(sc.proxy_url, u + "/api/v2/refunds")
    assert code == 200
    assert (upstream.last.header("X-Upstream"), upstream.last.raw_path) == ("billing_v2", "/api/v2/refunds")


async def test_path_under_no_base_path_of_a_shared_host_is_403_naming_them(upstream, make_sidecar):
    u = upstream.url
    sc = await make_sidecar(_config({"up": u + "/ok", "billing": u + "/api"}))
    for path in ("/other/x", "/", "/apix", "/okay"):
        r = await asyncio.to_thread(_get, sc.proxy_url, u + path)
        assert r.status_code == 403, path
        assert r.headers["Content-Type"] == "application/problem+json"
        problem = r.json()
        assert problem["type"].endswith("/forbidden-target")
        assert "/ok (upstream 'up')" in problem["detail"] and "/api (upstream 'billing')" in problem["detail"]
    code, body = await _curl(sc.proxy_url, u + "/nowhere")
    assert code == 403 and b"/api (upstream 'billing')" in body
    assert upstream.received == []


async def test_upstream_at_the_host_root_takes_what_no_longer_base_path_claims(upstream, make_sidecar):
    u = upstream.url
    sc = await make_sidecar(_config({"root": u, "billing": u + "/api"}))
    r = await asyncio.to_thread(_get, sc.proxy_url, u + "/api/charges")
    assert r.status_code == 200 and upstream.last.header("X-Upstream") == "billing"
    r = await asyncio.to_thread(_get, sc.proxy_url, u + "/health")
    assert r.status_code == 200 and upstream.last.header("X-Upstream") == "root"
    assert upstream.last.raw_path == "/health"


async def test_single_upstream_with_a_base_path_keeps_prefixing_other_paths(upstream, make_sidecar):
    # One upstream per host: the request path is taken under its base path, as before.
    u = upstream.url
    sc = await make_sidecar(_config({"billing": u + "/api"}))
    await asyncio.to_thread(_get, sc.proxy_url, u + "/api/charges")
    assert upstream.last.raw_path == "/api/charges"
    await asyncio.to_thread(_get, sc.proxy_url, u + "/charges")
    assert upstream.last.raw_path == "/api/charges"


@pytest.mark.parametrize(("configured", "sent"), [("localhost", "127.0.0.1"), ("127.0.0.1", "localhost"), ("localhost", "[::1]")])
async def test_host_spelled_differently_is_403_naming_the_configured_spelling(upstream, make_sidecar, configured, sent):
    sc = await make_sidecar(_config({"crm": f"http://{configured}:{upstream.port}"}))
    r = await asyncio.to_thread(_get, sc.proxy_url, f"http://{sent}:{upstream.port}/contacts")
    assert r.status_code == 403
    detail = r.json()["detail"]
    assert detail == (
        f"{sent}:{upstream.port} is not a configured upstream; did you mean {configured}:{upstream.port} "
        "(upstream 'crm')? Forward-mode hosts must match base_url exactly"
    )
    assert upstream.received == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
async def test_curl_tunnel_run_id_goes_on_the_connect_request(tmp_path, make_sidecar):
    # The README's recipe: `-H` goes inside the TLS tunnel, where Seamline never sees it; `--proxy-header` goes on
    # the CONNECT request, which Seamline reads (and echoes on its 200).
    cert, ctx = self_signed(tmp_path)
    seen: list[str | None] = []

    async def hello(request):
        seen.append(request.headers.get("X-Run-ID"))
        return web.json_response({"tls": True})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    port = runner.addresses[0][1]
    try:
        sc = await make_sidecar(proxy_config({"secure": f"https://127.0.0.1:{port}"}))
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}

        async def curl(*args: str) -> str:
            proc = await asyncio.create_subprocess_exec(
                "curl",
                "-sS",
                "-v",
                "--cacert",
                str(cert),
                "-x",
                sc.proxy_url,
                *args,
                f"https://127.0.0.1:{port}/hello",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 10)
            assert proc.returncode == 0 and b'"tls": true' in out, err
            return err.decode("latin-1")

        trace = await curl("--proxy-header", "X-Run-ID: order-1")
        assert re.search(r"^< X-Run-ID: order-1\r?$", trace, re.M)  # on the CONNECT's 200: Seamline has it
        trace = await curl("-H", "X-Run-ID: order-2")
        echoed = re.search(r"^< X-Run-ID: (\S+)\r?$", trace, re.M)
        assert echoed and echoed.group(1) != "order-2"  # Seamline minted one: -H went inside the tunnel only
        assert seen == [None, "order-2"]
    finally:
        await runner.cleanup()
