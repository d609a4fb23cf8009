"""Never an open proxy: only configured upstreams, no path tricks, no private addresses unless allowed."""

from __future__ import annotations

import aiohttp
import pytest
from conftest import proxy_config
from support.rawhttp import raw_request
from support.upstream import Upstream


@pytest.fixture
async def two(make_sidecar):
    billing = await Upstream().start()
    crm = await Upstream().start()
    sc = await make_sidecar(proxy_config({"billing": billing.url + "/api", "crm": crm.url}))
    yield sc, billing, crm
    await billing.stop()
    await crm.stop()


@pytest.mark.parametrize(
    "target",
    [
        "/billing/../crm/x",
        "/billing/%2e%2e/crm/x",
        "/billing/%2E%2E/%2e%2e/crm/x",
        "/billing/./x",
        "/billing//evil.example/x",
        "/billing/%2F%2Fevil.example/x",
        "/billing/http://evil.example/x",
        "/billing/http:%2F%2Fevil.example/x",
        "/billing/..%5ccrm/x",
        "/billing/\\..\\crm",
        "/billing/x/..",
        "//evil.example/x",
        "/%2e%2e/crm/x",
    ],
)
async def test_path_tricks_never_reach_another_host(two, target):
    sc, billing, crm = two
    r = await raw_request(sc.proxy_port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert r.status in (400, 403, 404)
    assert r.header("Content-Type") == "application/problem+json"
    assert crm.received == []
    assert billing.received == []


async def test_absolute_form_to_an_unconfigured_host_is_403(two):
    sc, _billing, _crm = two
    r = await raw_request(sc.proxy_port, b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert r.status == 403


async def test_connect_to_an_unconfigured_host_is_403(two):
    sc, *_ = two
    r = await raw_request(sc.proxy_port, b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
    assert r.status == 403


async def test_loopback_upstream_is_refused_unless_allowed(upstream, make_sidecar):
    cfg = proxy_config({"billing": upstream.url})
    strict = cfg.upstreams["billing"].model_copy(update={"allow_private": False})
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"billing": strict}}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/x") as r:
            assert r.status == 403
            assert (await r.json())["error_class"] == "refused"
    assert upstream.received == []


async def test_hostname_resolving_to_loopback_is_refused_unless_allowed(upstream, make_sidecar):
    cfg = proxy_config({"billing": f"http://localhost:{upstream.port}"})
    strict = cfg.upstreams["billing"].model_copy(update={"allow_private": False})
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"billing": strict}}))
    async with aiohttp.ClientSession() as s:
        async with s.get(sc.proxy_url + "/billing/x") as r:
            assert r.status == 403
    assert upstream.received == []


@pytest.mark.parametrize("ip", ["10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254", "::1", "fd00::1", "0.0.0.0"])
def test_non_public_addresses_are_classified_private(ip):
    from seamline.proxy.netguard import is_public

    assert not is_public(ip)


def test_public_addresses_are_allowed():
    from seamline.proxy.netguard import is_public

    assert is_public("8.8.8.8") and is_public("2606:4700::1111")


@pytest.mark.parametrize(
    "host",
    ["2130706433", "127.1", "017700000001", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"],  # date-ok: IPv4 spellings, not times
)
async def test_obfuscated_loopback_upstreams_are_refused_not_connect_errors(upstream, make_sidecar, host):
    cfg = proxy_config({"billing": f"http://{host}:{upstream.port}"})
    strict = cfg.upstreams["billing"].model_copy(update={"allow_private": False})
    sc = await make_sidecar(cfg.model_copy(update={"upstreams": {"billing": strict}}))
    for target in ("/billing/x", f"http://{host}:{upstream.port}/x"):
        r = await raw_request(sc.proxy_port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert r.status == 403, target
        assert b'"error_class":"refused"' in r.body
    assert upstream.received == []


async def test_forward_target_with_userinfo_is_refused(two):
    sc, billing, _crm = two
    target = f"http://evil@127.0.0.1:{billing.port}/api/x"
    r = await raw_request(sc.proxy_port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    assert r.status == 400 and r.header("Content-Type") == "application/problem+json"
    assert billing.received == []
