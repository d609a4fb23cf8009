"""Upgrades: h2c offers declined (HTTP/1.1 goes on), WebSockets relayed frame for frame, in reverse and forward mode.

Real clients (the `websockets` library, aiohttp's ws_connect, curl) against a real `websockets` server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import ssl
from typing import Any

import aiohttp
import orjson
import pytest
from conftest import proxy_config
from support.chdb_path import chdb_url, unique_database
from support.rawhttp import raw_request
from support.tls import self_signed
from support.wsupstream import WsUpstream
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode

from seamline.config.models import Config


@pytest.fixture
async def ws_up():
    up = await WsUpstream().start()
    yield up
    await up.stop()


def ws_config(up: WsUpstream, idle: float | None = None, **extra: Any) -> Config:
    timeouts: dict[str, float] = {"connect": 2, "read": 5, "total": 5}
    if idle is not None:
        timeouts["websocket_idle"] = idle
    cfg = proxy_config({"chat": up.url}, **extra)
    chat = {"base_url": up.url, "allow_private": True, "timeouts": timeouts}
    return cfg.model_copy(update={"upstreams": {"chat": type(cfg.upstreams["chat"]).model_validate(chat)}})


def open_ws(sc: Any, path: str, **kw: Any) -> Any:
    """A `websockets` client to ws://seamline/chat<path> (reverse mode); no proxy from the environment."""
    kw.setdefault("close_timeout", 2)
    return connect(f"ws://127.0.0.1:{sc.proxy_port}/chat{path}", proxy=None, **kw)


# -- h2c --------------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
async def test_curl_h2c_offer_gets_the_same_http1_answer_as_directly(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"up": upstream.url}))

    async def curl(url: str) -> tuple[str, bytes]:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--http2", "-o", "-", "-w", "\n%{http_code} %{http_version}", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0, err
        body, _, status = out.rpartition(b"\n")
        return status.decode(), body

    direct = await curl(upstream.url + "/v1/items?x=1")
    assert upstream.last.header("Upgrade") == "h2c"  # curl did offer h2c (and the upstream declined it)
    proxied = await curl(sc.proxy_url + "/up/v1/items?x=1")
    assert proxied == direct == ("200 1.1", b'{"ok": true, "path": "/v1/items"}')
    sent = upstream.last
    assert sent.header("Upgrade") is None and sent.header("HTTP2-Settings") is None
    assert "upgrade" not in (sent.header("Connection") or "").lower()


async def test_h2c_offer_keeps_the_connection_usable_for_the_next_request(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"up": upstream.url}))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:
        for path, extra in (
            ("/first", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n"),
            ("/second", ""),
        ):
            writer.write(f"GET /up{path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
                )
                body = await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200") and orjson.loads(body)["path"] == path
    finally:
        writer.close()
    assert [r.header("HTTP2-Settings") for r in upstream.received] == [None, None]


async def test_http2_settings_without_an_upgrade_never_reaches_the_upstream(upstream, make_sidecar):
    sc = await make_sidecar(proxy_config({"up": upstream.url}))
    r = await raw_request(
        sc.proxy_port, b"GET /up/x HTTP/1.1\r\nHost: x\r\nHTTP2-Settings: AAMAAABk\r\nConnection: close\r\n\r\n"
    )
    assert r.status == 200 and upstream.last.header("HTTP2-Settings") is None


# -- WebSockets: relay --------------------------------------------------------------------------------------------------


async def test_text_and_binary_messages_pass_both_ways_with_the_negotiated_subprotocol(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with open_ws(
        sc,
        "/echo/room-1?user=ada",
        subprotocols=["chat.v3", "chat.v2"],
        additional_headers={"X-Run-ID": "ws-run-1", "Origin": "https://app.example"},
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.status_code == 101
        assert ws.response.headers["X-Run-ID"] == "ws-run-1"  # Seamline's correlation headers on the 101
        assert ws.response.headers["traceparent"].startswith("00-")
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff" * 1000)
        assert await ws.recv() == b"\x00\xff" * 1000
    assert ws.close_code == 1000
    ended = await asyncio.wait_for(ws_up.ended.get(), 5)
    assert (ended.path, ended.close_code, ended.subprotocol, ended.messages) == ("/echo/room-1?user=ada", 1000, "chat.v2", 2)
    seen = ws_up.handshakes[-1]
    assert seen["Sec-WebSocket-Protocol"] == "chat.v3, chat.v2" and seen["Origin"] == "https://app.example"
    assert (
        seen["X-Run-ID"] == "ws-run-1" and seen["traceparent"].split("-")[1] == ws.response.headers["traceparent"].split("-")[1]
    )
    assert seen["Host"] == f"127.0.0.1:{ws_up.port}"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test CA")
async def test_a_wss_upstream_is_reached_over_verified_tls(make_sidecar, tmp_path):
    cert, ctx = await asyncio.to_thread(self_signed, tmp_path)
    up = await WsUpstream(tls=ctx).start()
    try:
        cfg = ws_config(up)
        sc = await make_sidecar(
            cfg.model_copy(update={"upstreams": {"chat": cfg.upstreams["chat"].model_copy(update={"ca_bundle": str(cert)})}})
        )
        async with open_ws(sc, "/echo") as ws:
            await ws.send("over tls")
            assert await ws.recv() == "over tls"
        assert ws.close_code == 1000
        assert (await asyncio.wait_for(up.ended.get(), 5)).close_code == 1000
    finally:
        await up.stop()


async def test_permessage_deflate_is_negotiated_end_to_end_and_its_frames_pass_intact(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    big = "compressible " * 20_000
    async with open_ws(sc, "/echo", compression="deflate") as ws:
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        for _ in range(3):  # context takeover: later messages are compressed against earlier ones
            await ws.send(big)
            assert await ws.recv() == big
    ended = await asyncio.wait_for(ws_up.ended.get(), 5)
    assert ended.extensions == ("permessage-deflate",) and ended.messages == 3


async def test_close_from_the_upstream_reaches_the_client_with_its_code(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with open_ws(sc, "/bye") as ws:
        await ws.send("bye")
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert (ws.close_code, ws.close_reason) == (4000, "server says bye")
    assert (await asyncio.wait_for(ws_up.ended.get(), 5)).close_code == 4000


async def test_close_from_the_client_reaches_the_upstream_with_its_code(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with open_ws(sc, "/echo") as ws:
        await ws.send("x")
        await ws.recv()
        await ws.close(4001, "client done")
    assert (await asyncio.wait_for(ws_up.ended.get(), 5)).close_code == 4001


async def test_after_the_close_handshake_an_upstream_that_keeps_its_tcp_open_is_cut_after_the_read_timeout(make_sidecar):
    upstream_eof = asyncio.get_running_loop().create_future()

    async def lingering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Completes the WebSocket close handshake, then never closes its side (as a sloppy server might)."""
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept
            + b"\r\n\r\n"
        )
        await reader.readexactly(2 + 4 + 2)  # the client's masked Close(1000)
        writer.write(bytes((0x88, 2)) + (1000).to_bytes(2, "big"))
        upstream_eof.set_result(await reader.read())  # b"" once Seamline ends the connection

    server = await asyncio.start_server(lingering, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cfg = proxy_config({"chat": f"http://127.0.0.1:{port}"})
        up = cfg.upstreams["chat"].model_copy(
            update={"timeouts": cfg.upstreams["chat"].timeouts.model_copy(update={"read": 0.3})}
        )
        sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"chat": up}}))
        loop = asyncio.get_running_loop()
        async with open_ws(sc, "/x", close_timeout=10, compression=None) as ws:
            started = loop.time()
        took = loop.time() - started
        assert ws.close_code == 1000
        assert await asyncio.wait_for(upstream_eof, 5) == b""
        assert took < 3  # cut after the read timeout, not the client's 10 s close timeout (nor the 300 s idle one)
    finally:
        server.close()


async def test_an_idle_websocket_is_closed_with_1001_on_both_sides(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up, idle=0.3))
    loop = asyncio.get_running_loop()
    async with open_ws(sc, "/quiet", ping_interval=None) as ws:  # no pings: pings would keep it alive
        opened = loop.time()
        await asyncio.wait_for(ws.wait_closed(), 5)
        lived = loop.time() - opened
    assert ws.close_code == 1001
    assert lived >= 0.25  # closed by the idle timer, not at once
    assert (await asyncio.wait_for(ws_up.ended.get(), 5)).close_code == 1001


async def test_stopping_seamline_closes_open_websockets_with_1001(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with open_ws(sc, "/quiet", ping_interval=None) as ws:
        await asyncio.wait_for(sc.stop(), 5)
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1001
    assert (await asyncio.wait_for(ws_up.ended.get(), 5)).close_code == 1001


async def test_a_declined_handshake_is_relayed_as_a_normal_response(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    with pytest.raises(InvalidStatus) as err:
        async with open_ws(sc, "/forbidden"):
            pass
    assert err.value.response.status_code == 403 and err.value.response.body == b"no entry\n"
    assert err.value.response.headers["X-Run-ID"]


async def test_a_declined_handshake_leaves_the_app_connection_usable(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:
        writer.write(b"GET /chat/forbidden HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")  # fmt: skip
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 403")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
            assert await reader.readexactly(length) == b"no entry\n"
            writer.write(b"GET /chat/forbidden HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")  # fmt: skip
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 403")
    finally:
        writer.close()
    assert len(ws_up.handshakes) == 2


# -- WebSockets: forward mode, CONNECT and refusals ---------------------------------------------------------------------


async def test_aiohttp_ws_connect_through_seamline_as_http_proxy_uses_absolute_form(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(
            f"ws://127.0.0.1:{ws_up.port}/echo", proxy=sc.proxy_url, protocols=("chat.v1",), headers={"X-Run-ID": "fwd-ws"}
        ) as ws:
            assert ws.protocol == "chat.v1"
            await ws.send_str("fwd")
            assert (await ws.receive()).data == "fwd"
            await ws.send_bytes(b"\x01\x02")
            assert (await ws.receive()).data == b"\x01\x02"
    assert ws_up.handshakes[-1]["X-Run-ID"] == "fwd-ws"  # it went through Seamline's handshake, not a tunnel
    assert (await asyncio.wait_for(ws_up.ended.get(), 5)).messages == 2


async def test_absolute_form_http_uri_with_a_websocket_upgrade_is_relayed(ws_up, make_sidecar):
    """What a client sends that proxies ws:// as its http:// URI (e.g. undici's ProxyAgent with proxyTunnel: false)."""
    sc = await make_sidecar(ws_config(ws_up))
    reader, writer = await asyncio.open_connection("127.0.0.1", sc.proxy_port)
    try:
        writer.write(f"GET http://127.0.0.1:{ws_up.port}/echo HTTP/1.1\r\nHost: 127.0.0.1:{ws_up.port}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())  # fmt: skip
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's sample accept
            writer.write(Frame(Opcode.TEXT, b"raw").serialize(mask=True))
            assert await reader.readexactly(5) == Frame(Opcode.TEXT, b"raw").serialize(mask=False)
    finally:
        writer.close()


async def test_websockets_client_through_seamline_as_http_proxy_uses_a_connect_tunnel(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with connect(f"ws://127.0.0.1:{ws_up.port}/echo", proxy=sc.proxy_url, additional_headers={"X-Run-ID": "tun-ws"}) as ws:
        await ws.send("through CONNECT")
        assert await ws.recv() == "through CONNECT"
    # Tunnelled untouched: the handshake reaches the upstream as the client wrote it.
    assert "traceparent" not in ws_up.handshakes[-1] and ws_up.handshakes[-1]["X-Run-ID"] == "tun-ws"


@pytest.mark.parametrize(
    "target, status, slug",
    [
        ("ws://evil.example/chat", 403, "forbidden-target"),
        ("http://evil.example/chat", 403, "forbidden-target"),
        ("wss://evil.example/chat", 403, "forbidden-target"),
        ("/nope/chat", 404, "unknown-upstream"),
        ("/chat/../x", 400, "bad-request"),
    ],
)
async def test_a_websocket_to_anything_not_configured_is_refused_with_problem_json(ws_up, make_sidecar, target, status, slug):
    sc = await make_sidecar(ws_config(ws_up))
    r = await raw_request(sc.proxy_port, f"GET {target} HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())  # fmt: skip
    assert r.status == status and r.header("Content-Type") == "application/problem+json"
    assert orjson.loads(r.body)["type"].endswith(slug)
    assert ws_up.handshakes == []


async def test_aiohttp_ws_connect_to_an_unconfigured_host_is_refused(ws_up, make_sidecar):
    sc = await make_sidecar(ws_config(ws_up))
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await s.ws_connect("ws://evil.example/chat", proxy=sc.proxy_url)
    assert err.value.status == 403


# -- recording ----------------------------------------------------------------------------------------------------------


@pytest.fixture
async def rec_ws(ws_up, make_sidecar, tmp_path):
    """A recording sidecar (chdb, one database per test) in front of the WebSocket upstream."""
    storage = {
        "enabled": True,
        "clickhouse_url": chdb_url(),
        "database": unique_database("ws"),
        "spool_dir": str(tmp_path / "spool"),
        "flush_interval_ms": 20,
    }
    handoffs = {"chat.room": {"upstream": "chat", "match": "GET /echo/{room}", "safety": "safe_once"}}
    return await make_sidecar(ws_config(ws_up, storage=storage, handoffs=handoffs))


async def row_of(sc: Any, run_id: str) -> dict[str, Any]:
    """The run's one row, once the relay has ended and its event is stored."""
    async with asyncio.timeout(10):
        while not (rows := await sc.store.query("SELECT * FROM handoffs WHERE run_id = {r:String}", {"r": run_id})):
            await sc.recorder.flush(1)
    (row,) = rows
    return row


async def test_a_websocket_is_recorded_as_one_handoff_with_counts_each_way(rec_ws, ws_up):
    sc = rec_ws
    loop = asyncio.get_running_loop()
    marker = "payload-never-stored-7f3a"
    big = marker * 5_000  # 125 KB of text, compressible
    headers = {"X-Run-ID": "ws-rec-1", "Authorization": "Bearer sk_live_abcdef123456"}
    async with open_ws(sc, "/echo/room-9", subprotocols=["chat.v2"], additional_headers=headers, compression="deflate") as ws:
        opened = loop.time()
        for m in (marker, "two", big):
            await ws.send(m)
            assert await ws.recv() == m
        for b in (b"\x00" * 10, b"\x01\x02"):
            await ws.send(b)
            assert await ws.recv() == b
        await ws.close()
    held_ms = (loop.time() - opened) * 1000
    row = await row_of(sc, "ws-rec-1")
    a = row["attributes"]
    assert (row["mode"], row["status"], row["method"], row["handoff"], row["outcome"]) == (
        "websocket",
        101,
        "GET",
        "chat.room",
        "ok",
    )
    assert row["route"] == "/echo/{room}" and row["safety"] == "safe_once" and a["ws_via"] == "reverse"
    assert (a["ws_messages_sent"], a["ws_messages_received"]) == ("5", "5")
    assert (a["ws_frames_sent"], a["ws_frames_received"]) == ("6", "6")  # the messages and a Close frame each way
    assert (a["ws_closed_by"], a["ws_close_code"]) == ("client", "1000")
    assert row["request_bytes"] == int(a["ws_bytes_sent"]) and row["response_bytes"] == int(a["ws_bytes_received"])
    assert 0 < row["request_bytes"] < 10_000  # permessage-deflate frames relayed as compressed: 125 KB went as a few KB
    assert row["duration_ms"] >= held_ms  # open to close, not just the handshake
    assert 0 < row["ttfb_ms"] < row["duration_ms"]
    assert row["request_headers"]["authorization"] != headers["Authorization"]  # redacted as usual
    assert row["request_headers"]["sec-websocket-protocol"] == "chat.v2"
    assert row["response_headers"]["sec-websocket-protocol"] == "chat.v2"
    assert "permessage-deflate" in row["response_headers"]["sec-websocket-extensions"]
    assert marker not in repr(row) and "sk_live_abcdef123456" not in repr(row)  # payloads and secrets are not stored
    assert row["request_body"] == "" and row["response_body"] == ""


async def test_a_forward_mode_websocket_closed_by_the_upstream_is_recorded(rec_ws, ws_up):
    sc = rec_ws
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"ws://127.0.0.1:{ws_up.port}/bye", proxy=sc.proxy_url, headers={"X-Run-ID": "ws-rec-2"}) as ws:
            await ws.send_str("bye")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4000
    row = await row_of(sc, "ws-rec-2")
    a = row["attributes"]
    assert (row["mode"], row["status"], a["ws_via"], row["handoff"]) == ("websocket", 101, "forward", "chat.other")
    assert (a["ws_closed_by"], a["ws_close_code"]) == ("upstream", "4000")
    assert (a["ws_messages_sent"], a["ws_messages_received"]) == ("1", "0")


async def test_declined_and_refused_websocket_handshakes_are_recorded_as_websockets(rec_ws, ws_up):
    sc = rec_ws
    with pytest.raises(InvalidStatus):
        async with open_ws(sc, "/forbidden", additional_headers={"X-Run-ID": "ws-rec-3"}):
            pass
    with pytest.raises(InvalidStatus):
        async with connect(f"ws://127.0.0.1:{sc.proxy_port}/nope/x", proxy=None, additional_headers={"X-Run-ID": "ws-rec-4"}):
            pass
    declined, refused = await row_of(sc, "ws-rec-3"), await row_of(sc, "ws-rec-4")
    assert (declined["mode"], declined["status"], declined["error_class"], declined["response_body"]) == (
        "websocket",
        403,
        "auth",
        "no entry\n",
    )
    assert (refused["mode"], refused["status"], refused["error_class"]) == ("websocket", 404, "unknown_upstream")
    assert "ws_messages_sent" not in declined["attributes"]


async def test_an_idle_timeout_is_recorded_as_who_closed(ws_up, make_sidecar, tmp_path):
    storage = {
        "enabled": True,
        "clickhouse_url": chdb_url(),
        "database": unique_database("wsidle"),
        "spool_dir": str(tmp_path / "spool"),
        "flush_interval_ms": 20,
    }
    sc = await make_sidecar(ws_config(ws_up, idle=0.2, storage=storage))
    async with open_ws(sc, "/quiet", ping_interval=None, additional_headers={"X-Run-ID": "ws-rec-5"}) as ws:
        await asyncio.wait_for(ws.wait_closed(), 5)
    a = (await row_of(sc, "ws-rec-5"))["attributes"]
    assert (a["ws_closed_by"], a["ws_close_code"], a["ws_messages_sent"], a["ws_frames_sent"]) == (
        "idle_timeout",
        "1001",
        "0",
        "0",
    )
