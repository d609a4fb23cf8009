"""Resolve an inbound request to (upstream, handoff, upstream URL), refusing anything not configured.

Pure: no I/O. The never-an-open-proxy rules live here (path tricks) and in `netguard` (addresses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from yarl import URL

from seamline.config import Config, Handoff, Upstream
from seamline.errors import BadRequest, Forbidden, UnknownUpstream

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOT_SEGMENT = {".", ".."}
_ABS_URL = re.compile(r"^/*[A-Za-z][A-Za-z0-9+.-]*:/")


@dataclass(frozen=True, slots=True)
class HandoffRoute:
    name: str
    upstream: str
    method: str  # '*' for any
    template: str
    regex: re.Pattern[str]
    literal_chars: int
    spec: Handoff | None


@dataclass(frozen=True, slots=True)
class Target:
    upstream_name: str
    upstream: Upstream
    handoff: HandoffRoute
    url: URL  # absolute upstream URL (encoded as received)
    path: str  # upstream path (raw, without the upstream's base path)
    query: str  # raw query string


def _compile_template(template: str) -> tuple[re.Pattern[str], int]:
    out, pos, literal = [], 0, 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        literal += m.start() - pos
        out.append(f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    literal += len(template) - pos
    return re.compile("^" + "".join(out) + "/?$"), literal


class Router:
    """Maps (method, upstream, path) to a handoff; exact literals beat parameters."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.upstreams = dict(config.upstreams)
        self._by_host: dict[tuple[str, int], str] = {}
        self._base_urls = {name: up.url for name, up in self.upstreams.items()}  # parsed once, not per request
        for name, u in self._base_urls.items():
            self._by_host.setdefault((u.host or "", u.port or 0), name)
        routes: dict[str, list[HandoffRoute]] = {n: [] for n in self.upstreams}
        for name, h in config.handoffs.items():
            rx, lit = _compile_template(h.path_template)
            routes[h.upstream].append(HandoffRoute(name, h.upstream, h.method, h.path_template, rx, lit, h))
        for lst in routes.values():
            # Most specific first: more literal characters, then explicit method.
            lst.sort(key=lambda r: (-r.literal_chars, r.method == "*"))
        self._routes = routes
        self._other = {
            n: HandoffRoute(f"{n}.other", n, "*", "", re.compile(""), 0, None) for n in self.upstreams
        }

    def handoff_for(self, upstream: str, method: str, path: str) -> HandoffRoute:
        for r in self._routes.get(upstream, ()):
            if (r.method == "*" or r.method == method) and r.regex.match(path):
                return r
        return self._other[upstream]

    def upstream_for_host(self, host: str, port: int) -> str | None:
        return self._by_host.get((host.lower(), port))

    def resolve_reverse(self, method: str, raw_target: str) -> Target:
        """`/{upstream}/{path}?query` → Target (raw_target as sent on the request line)."""
        path, _, query = raw_target.partition("?")
        path = path.partition("#")[0]
        if not path.startswith("/"):
            raise BadRequest("request target must start with '/'")
        name, slash, rest = path[1:].partition("/")
        name = unquote(name)
        if name not in self.upstreams:
            raise UnknownUpstream(name)
        rest = slash + rest
        return self.target(name, method, rest or "/", query)

    def resolve_forward(self, method: str, url: URL) -> Target:
        """Absolute-form `http://host/...` → Target, only when host:port is a configured upstream."""
        if url.scheme != "http":
            raise Forbidden(f"forward proxying supports http:// targets only (use CONNECT for {url.scheme})")
        name = self.upstream_for_host(url.host or "", url.port or 80)
        if name is None:
            raise Forbidden(f"{url.host}:{url.port} is not a configured upstream")
        base_path = self._base_urls[name].raw_path.rstrip("/")
        raw_path = url.raw_path
        if base_path and (raw_path == base_path or raw_path.startswith(base_path + "/")):
            raw_path = raw_path[len(base_path) :] or "/"
        return self.target(name, method, raw_path, url.raw_query_string)

    def target(self, name: str, method: str, raw_path: str, query: str) -> Target:
        """The Target of upstream `name` for a raw path and query (checked; also rebuilds a shipped exchange's)."""
        check_path(raw_path)
        up = self.upstreams[name]
        base = up.base_url
        url = URL(base + raw_path + ("?" + query if query else ""), encoded=True)
        base_url = self._base_urls[name]
        if url.host != base_url.host or url.port != base_url.port or url.scheme != base_url.scheme:
            raise Forbidden("target escapes its upstream")  # defence in depth; check_path stops it first
        decoded = unquote(raw_path)
        return Target(name, up, self.handoff_for(name, method, decoded), url, raw_path, query)


_SUSPECT = re.compile(r"[%.\\:\x00-\x1f\x7f]|//")


def check_path(raw_path: str) -> None:
    """Refuse dot-segments (raw or %-encoded), backslashes, control chars and authority-like paths."""
    if _SUSPECT.search(raw_path) is None:
        return  # the common case: nothing that could decode to a trick
    lowered = raw_path.lower()
    if "\\" in raw_path or "%5c" in lowered:
        raise BadRequest("backslashes are not allowed in the path")
    decoded = unquote(raw_path)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise BadRequest("control characters are not allowed in the path")
    for seg in decoded.split("/"):
        if seg in _DOT_SEGMENT:
            raise BadRequest("dot-segments ('.', '..') are not allowed in the path")
    if decoded.startswith("//"):
        raise BadRequest("path must not start with '//'")
    if _ABS_URL.match(decoded):
        raise BadRequest("absolute URLs are not allowed in the path")
