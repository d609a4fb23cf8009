"""Via stage (RFC 9110 §7.6.3): Seamline names itself in the `Via` of every request it forwards, and a request
that already carries its own name has come back round — an upstream whose base URL leads to this sidecar — so it
is answered 508 Loop Detected (RFC 5842 §7.2) instead of being forwarded again (without it, one such request goes
round until one of its growing headers is too large).

The name is a pseudonym, `seamline-<server.instance>` (default: the host name), as the RFC allows in place of a
host; replicas with distinct instances each recognise their own name, so a loop through several is cut when it
reaches one of them a second time. Responses get no Via: what the upstream sent reaches the client unchanged.
"""

from __future__ import annotations

import re

from aiohttp import web

from seamline import errors
from seamline.exchange import Exchange
from seamline.proxy.inbound import Inbound

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]+")


def pseudonym(instance: str) -> str:
    """`seamline-<instance>`, reduced to a token (RFC 9110 §5.6.2) so it is a valid `received-by`."""
    return "seamline-" + (_NOT_TOKEN.sub("-", instance).strip("-") or "proxy")


def names(values: list[str] | tuple[str, ...]) -> list[str]:
    """The `received-by` of every Via member, in order (`1.1 a, HTTP/2 b (comment)` → ['a', 'b']). Pure."""
    out: list[str] = []
    for line in values:
        for member in line.split(","):
            parts = member.split()
            if len(parts) >= 2:
                out.append(parts[1])
    return out


class Via:
    name = "via"
    essential = True

    def __init__(self, instance: str) -> None:
        self.pseudonym = pseudonym(instance)
        self.value = f"1.1 {self.pseudonym}"  # appended to the request's Via as it goes upstream

    def request(self, ex: Exchange, http: web.BaseRequest, heads: Inbound) -> None:
        via = heads.all("via")
        if via and self.pseudonym in names(via):
            raise errors.LoopDetected(
                f"the request already passed through {self.pseudonym} (its Via): an upstream leads back here"
            )
