"""Drive headless Chromium (Debian's /usr/bin/chromium) over the DevTools protocol with aiohttp's websocket client."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab attached with a flat session: `await page.send(method, **params)`, `await page.event(name)`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session_id: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []  # every event received (method, params), in order
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append((data["method"], data.get("params", {})))
                for name, fut in list(self._waiters):
                    if name == data["method"] and not fut.done():
                        fut.set_result(data.get("params", {}))
                        self._waiters.remove((name, fut))

    async def send(self, method: str, *, browser: bool = False, **params: Any) -> dict[str, Any]:
        mid = next(self._ids)
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params}
        if self.session_id and not browser:
            msg["sessionId"] = self.session_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        await self.ws.send_json(msg)
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def expect(self, event: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next `event`; create it before the action that fires it."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((event, fut))
        return fut

    async def evaluate(self, expression: str) -> Any:
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(str(res["exceptionDetails"]))
        return res["result"].get("value")

    async def goto(self, url: str) -> None:
        loaded = self.expect("Page.loadEventFired")
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, 30)

    async def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def problems(self) -> list[dict[str, Any]]:
        """Console errors/warnings, uncaught exceptions and browser log errors (CSP violations among them) so far;
        needs `Runtime.enable` and `Log.enable` before the navigation."""
        out = []
        for method, params in self.events:
            if method == "Runtime.exceptionThrown" or (
                method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert")
            ):
                out.append(params)
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                out.append(params["entry"])
        return out

    async def close(self) -> None:
        self._reader.cancel()


@asynccontextmanager
async def chromium(width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """Start headless Chromium on 127.0.0.1, open one tab, yield it; the browser is ended on exit."""
    assert CHROMIUM, "chromium not installed"
    profile = tempfile.TemporaryDirectory(prefix="seamline-chromium-")
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile.name}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        ws_url = None
        for _ in range(200):  # bounded: Chromium prints a few lines before the DevTools URL
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode(errors="replace")
            if not line:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws_url = m.group(1)
                break
        assert ws_url, "Chromium did not print its DevTools URL"
        drain = asyncio.ensure_future(_drain(proc.stderr))
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=64 << 20) as ws:
            page = Page(ws)
            target = await page.send("Target.createTarget", url="about:blank")
            attached = await page.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
            page.session_id = attached["sessionId"]
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            try:
                yield page
            finally:
                await page.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        profile.cleanup()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
