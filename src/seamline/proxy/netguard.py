"""Refuse upstream addresses on loopback, private, link-local and other non-public ranges.

Enforced at connect time by a resolver wrapper (so DNS answers are checked, defeating
rebinding) and for IP-literal hosts, which aiohttp never sends to the resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class RefusedAddress(OSError):
    """The upstream resolved to an address this upstream may not reach."""


def is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


_INET_ATON_CHARS = frozenset("0123456789abcdefxABCDEFX.")


def legacy_ipv4(host: str) -> str | None:
    """The dotted quad a non-canonical IPv4 literal stands for (`2130706433`, `127.1`, `0x7f.1`, `0177.0.0.1`).

    None for a canonical address or a host name. These spellings are the classic way past an address filter: the
    C resolver reads them as addresses, Python's `ipaddress` does not. `inet_aton` parses them as the resolver does.
    """
    if not host or not set(host) <= _INET_ATON_CHARS:
        return None
    try:
        canonical = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None
    return None if canonical == host else canonical


def check_ip_literal(host: str, allow_private: bool) -> None:
    """Raise RefusedAddress for a non-public IP literal unless allowed, and for a non-canonical IPv4 literal always
    (write the address it means instead); host names pass (the resolver's answers are checked by GuardedResolver).
    IPv4-mapped IPv6 literals (`[::ffff:127.0.0.1]`) are judged as the IPv4 address they carry (`is_public`)."""
    legacy = legacy_ipv4(host)
    if legacy is not None:
        raise RefusedAddress(f"{host} is a non-canonical IPv4 literal for {legacy}; write the address as {legacy}")
    try:
        public = is_public(host.strip("[]"))
    except ValueError:
        return
    if not public and not allow_private:
        raise RefusedAddress(f"{host} is not a public address (set allow_private: true for this upstream)")


class GuardedResolver(AbstractResolver):
    """Wraps aiohttp's default resolver and filters out non-public answers."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        allowed = [r for r in results if is_public(r["host"])]
        if not allowed:
            raise RefusedAddress(f"{host} resolves only to non-public addresses (set allow_private: true for this upstream)")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def find_refusal(exc: BaseException | None) -> RefusedAddress | None:
    """Walk the exception chain (aiohttp wraps resolver errors) for a RefusedAddress."""
    seen: set[int] = set()
    cur: Any = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, RefusedAddress):
            return cur
        nxt = getattr(cur, "os_error", None)
        if isinstance(nxt, RefusedAddress):
            return nxt
        cur = cur.__cause__ or cur.__context__
    return None
