"""HTTPS upstreams: certificates are verified (CA bundle configurable); a bad certificate is a 502 `tls`."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import aiohttp
import pytest
from aiohttp import web
from conftest import proxy_config
from support.tls import self_signed

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test CA")


@pytest.fixture
async def https_upstream(tmp_path):
    cert, ctx = self_signed(tmp_path)

    async def hello(request):
        return web.json_response({"tls": True})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}", str(cert)
    await runner.cleanup()


async def test_https_upstream_with_its_ca_bundle_works(https_upstream, make_sidecar):
    url, ca = https_upstream
    cfg = proxy_config({"secure": url})
    up = cfg.upstreams["secure"].model_copy(update={"ca_bundle": ca})
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"secure": up}}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/secure/hello") as r:
            assert r.status == 200
            assert await r.json() == {"tls": True}


async def test_untrusted_certificate_is_a_502_tls_error(https_upstream, make_sidecar):
    url, _ = https_upstream
    sc = await make_sidecar(proxy_config({"secure": url}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/secure/hello") as r:
            assert r.status == 502
            body = await r.json()
    assert body["error_class"] == "tls"
