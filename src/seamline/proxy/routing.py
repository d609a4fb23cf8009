"""Resolve an inbound request to (upstream, handoff, upstream URL), refusing anything not configured.

Pure: no I/O. The never-an-open-proxy rules live here (path tricks) and in `netguard` (addresses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from yarl import URL

from seamline.config.models import Config, Handoff, Upstream
from seamline.errors import BadRequest, Forbidden, UnknownUpstream

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Spellings of this machine a client may use instead of the configured one. A static table, never a DNS lookup:
# the refusal's hint must not depend on (or leak timing of) name resolution.
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = frozenset({80, 443})
_MAX_HINTS = 3
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
        # Forward mode: (scheme, host, port) → its upstreams as (base path, name), longest base path first. Config
        # validation refuses two upstreams with one scheme+host+port+base path; should a Config built by hand hold
        # some anyway, the stable sort keeps the first configured in front, as before.
        self._forward: dict[tuple[str, str, int], list[tuple[str, str]]] = {}
        self._base_urls = {name: up.url for name, up in self.upstreams.items()}  # parsed once, not per request
        for name, u in self._base_urls.items():
            host, port = u.host or "", u.port or 0
            self._by_host.setdefault((host, port), name)
            self._forward.setdefault((u.scheme or "", host, port), []).append((u.raw_path.rstrip("/"), name))
        for entries in self._forward.values():
            entries.sort(key=lambda e: -len(e[0]))
        routes: dict[str, list[HandoffRoute]] = {n: [] for n in self.upstreams}
        for name, h in config.handoffs.items():
            rx, lit = _compile_template(h.path_template)
            routes[h.upstream].append(HandoffRoute(name, h.upstream, h.method, h.path_template, rx, lit, h))
        for lst in routes.values():
            # Most specific first: more literal characters, then explicit method.
            lst.sort(key=lambda r: (-r.literal_chars, r.method == "*"))
        self._routes = routes
        self._other = {n: HandoffRoute(f"{n}.other", n, "*", "", re.compile(""), 0, None) for n in self.upstreams}

    def handoff_for(self, upstream: str, method: str, path: str) -> HandoffRoute:
        for r in self._routes.get(upstream, ()):
            if (r.method == "*" or r.method == method) and r.regex.match(path):
                return r
        return self._other[upstream]

    def upstream_for_host(self, host: str, port: int) -> str | None:
        """The first configured upstream on host:port, whatever its scheme and base path (for CONNECT)."""
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
        """Absolute-form `http://host/...` → Target, only when scheme, host and port are a configured upstream's.

        Upstreams sharing a host:port are told apart by base path: the longest one that prefixes the request path
        on a segment boundary wins, and the path is sent on as requested (never under another upstream's base).
        """
        if url.scheme != "http":
            raise Forbidden(f"forward proxying supports http:// targets only (use CONNECT for {url.scheme})")
        host, port = url.host or "", url.port or 80
        entries = self._forward.get(("http", host, port))
        if entries is None:
            raise self.unconfigured_host(host, port, "http")
        raw_path = url.raw_path
        if len(entries) == 1:
            # One upstream on this host:port: a path under its base path is taken relative to it, and any other
            # path is put under it (unchanged from before base paths told upstreams apart).
            base_path, name = entries[0]
            if base_path and _under(raw_path, base_path):
                raw_path = raw_path[len(base_path) :] or "/"
            return self.target(name, method, raw_path, url.raw_query_string)
        for base_path, name in entries:
            if _under(raw_path, base_path):
                return self.target(name, method, raw_path[len(base_path) :] or "/", url.raw_query_string)
        listed = ", ".join(f"{b or '/'} (upstream {n!r})" for n, b in self._config_order(entries))
        raise Forbidden(
            f"{_authority(host, port)} is shared by several upstreams, told apart by base path, and the request path "
            f"is under none of them; configured base paths: {listed}"
        )

    def unconfigured_host(self, host: str, port: int, scheme: str | None = None) -> Forbidden:
        """The refusal of a host:port no upstream has, naming a configured spelling it may have meant.

        `scheme` None (CONNECT) accepts any upstream scheme. Near misses: a loopback alias (localhost, 127.0.0.1,
        [::1]) on the same port, the same host under another scheme, or, on a non-default port, another host on
        that port. Pure: a fixed table, no DNS.
        """
        detail = f"{_authority(host, port)} is not a configured upstream"
        hints = self._near_misses(host, port, scheme)
        if hints:
            detail += f"; did you mean {' or '.join(hints)}? Forward-mode hosts must match base_url exactly"
        return Forbidden(detail)

    def _near_misses(self, host: str, port: int, scheme: str | None) -> list[str]:
        aliases = _LOOPBACK if host in _LOOPBACK else frozenset({host})
        ranked: list[tuple[int, int, str]] = []
        for order, ((up_scheme, up_host, up_port), entries) in enumerate(self._forward.items()):
            same_scheme = scheme is None or up_scheme == scheme
            if up_port == port and up_host in aliases and (up_host != host or not same_scheme):
                rank = 0 if same_scheme else 1  # another spelling of this machine, or only the scheme differs
            elif up_port == port and port not in _DEFAULT_PORTS and same_scheme:
                rank = 2  # a distinctive port: likely the same server under another name
            else:
                continue
            names = ", ".join(repr(n) for n, _ in self._config_order(entries))
            where = _authority(up_host, up_port) if same_scheme else f"{up_scheme}://{_authority(up_host, up_port)}"
            ranked.append((rank, order, f"{where} (upstream{'s' if len(entries) > 1 else ''} {names})"))
        return [text for _, _, text in sorted(ranked)[:_MAX_HINTS]]

    def _config_order(self, entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(name, base path) of `entries` in the order the config lists them (error texts read like the file)."""
        by_name = {n: b for b, n in entries}
        return [(n, by_name[n]) for n in self.upstreams if n in by_name]

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


def _under(raw_path: str, base_path: str) -> bool:
    """Whether `raw_path` is `base_path` or below it, on a segment boundary ('' is the root, above every path)."""
    return raw_path.startswith(base_path) and (len(raw_path) == len(base_path) or raw_path[len(base_path)] == "/")


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
