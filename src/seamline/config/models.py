"""Seamline's configuration models: every key, its type, default and description (the reference is generated
from these), with SEAMLINE_* environment overrides. Loading and error formatting: `seamline.config.loader`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from yarl import URL

from seamline.capture.detectors import DETECTOR_NAMES
from seamline.config.admin import TOKEN_HINT, Admin, is_loopback_host
from seamline.config.guards import CircuitBreaker, Dedup, Duration, Loops, Off, RateLimit, Retry

DEFAULT_REDACT_HEADERS = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
]
# Any header whose lower-cased name contains one of these is redacted too (`*auth*`, `*token*`, …, `X-Amz-*`).
# Query/form names use them too, except `auth` (it would hit `author`).
DEFAULT_REDACT_HEADER_PARTS = ["token", "secret", "password", "key", "auth", "signature", "api-key", "x-amz-"]
DEFAULT_REDACT_KEYS = ["password", "secret", "token", "card_number", "cvv", "ssn", "iban"]
# Redacted with DEFAULT_REDACT_KEYS by default; a separate list so that setting `redact_keys` replaces the base list
# and keeps these (`redact_keys_extra: []` drops them).
DEFAULT_REDACT_KEYS_EXTRA = [
    "passwd",
    "pwd",
    "pass",
    "api_key",
    "apikey",
    "private_key",
    "client_secret",
    "refresh_token",
    "credentials",
    "authorization",
    "cvc",
]
DEFAULT_REDACT_QUERY = [
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
]
# Never redacted by the header deny-list (their values are not secrets and are recorded elsewhere). A challenge
# (WWW-Authenticate) carries no credential and says why a 401 happened, so `*auth*` spares it.
DEFAULT_ALLOW_HEADERS = ["idempotency-key", "x-idempotency-key", "www-authenticate", "proxy-authenticate"]
DEFAULT_CLICKHOUSE_URL = "chdb:///./.seamline/data"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_MATCH_RE = re.compile(r"^(?:(?P<method>[A-Z]+|\*)\s+)?(?P<path>/\S*)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Timeouts(_Model):
    """Per-upstream timeouts in seconds."""

    connect: float = Field(2.0, gt=0, description="TCP/TLS connect timeout.")
    read: float = Field(
        10.0,
        gt=0,
        description="Max wait for the upstream's response headers (once the request body is sent) and for each response chunk.",
    )
    total: float = Field(
        30.0, gt=0, description="Deadline for the response headers, excluding the request and response body streams."
    )
    request_body_idle: float = Field(
        30.0, gt=0, description="Max gap between two chunks of the client's request body (then 408, class client_timeout)."
    )
    websocket_idle: float = Field(
        300.0,
        gt=0,
        description="A proxied WebSocket with no frame either way (pings count) for this long is closed, 1001 to both sides.",
    )


class HeaderRedaction(_Model):
    """Per-upstream header redaction overrides (on top of the default deny-list)."""

    allow: list[str] = Field(default_factory=list, description="Header names never redacted.")
    deny: list[str] = Field(default_factory=list, description="Extra header names always redacted.")


class Upstream(_Model):
    """An external API Seamline may forward to."""

    base_url: str = Field(
        description="http(s) URL of the API, e.g. https://api.billing.example. Upstreams on one scheme+host+port must "
        "have distinct base paths: forward mode picks the longest that prefixes the request path."
    )
    timeouts: Timeouts = Field(default_factory=Timeouts)
    headers: dict[str, str] = Field(default_factory=dict, description="Headers added to every upstream request.")
    allow_private: bool = Field(False, description="Allow loopback/private/link-local targets (tests, internal APIs).")
    verify_tls: bool = Field(True, description="Verify the upstream's TLS certificate.")
    ca_bundle: str | None = Field(None, description="Path to a PEM CA bundle for this upstream.")
    max_connections: int = Field(100, ge=1, description="Connection pool size.")
    redact_headers: HeaderRedaction = Field(default_factory=HeaderRedaction)
    rewrite_redirects: bool = Field(
        True,
        description="Reverse mode: rewrite a Location/Content-Location that points under base_url to the Seamline route "
        "that reaches it (as nginx's default proxy_redirect), so clients that follow redirects stay routed and recorded.",
    )
    retry: Annotated[Retry, Off] = Field(
        default_factory=Retry,
        description="Retries of this upstream's safe_to_repeat calls (a handoff's own `retry` wins); false: none.",
    )
    circuit_breaker: Annotated[CircuitBreaker, Off] = Field(
        default_factory=CircuitBreaker, description="The upstream's circuit breaker; false: none."
    )
    rate_limit: RateLimit | None = Field(None, description="A local rate limit for calls to this upstream (off).")
    openapi: str | None = Field(
        None,
        description="The API's OpenAPI 3.0/3.1 document (YAML or JSON, relative to the config file): every operation becomes "
        "a handoff `<upstream>.<operationId>` validated against it (see Contracts from OpenAPI). Its paths are taken "
        "relative to base_url: set base_url to the document's server URL.",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, v: str) -> str:
        try:
            url = URL(v)
        except (ValueError, TypeError) as e:
            raise ValueError(f"not a URL ({e}); use e.g. https://api.example.com") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL with a host, e.g. https://api.example.com")
        if url.query_string or url.fragment:
            raise ValueError("must not carry a query or fragment")
        return v.rstrip("/")

    @property
    def url(self) -> URL:
        return URL(self.base_url)


class Contract(_Model):
    """The business contract of a handoff (compiled and evaluated by `seamline.validate.contracts`)."""

    status: list[int] | None = Field(None, description="Expected HTTP status codes.")
    request_schema: dict[str, Any] | None = Field(None, description="JSON Schema (2020-12) of the request body.")
    response_schema: dict[str, Any] | None = Field(None, description="JSON Schema (2020-12) of the response body.")
    assert_: dict[str, str] = Field(
        default_factory=dict,
        alias="assert",
        validation_alias=AliasChoices("assert", "assert_"),
        description="Named JMESPath assertions over {request, response}; each must be truthy.",
    )
    echo: list[str] = Field(default_factory=list, description="Request body fields that must come back in the response body.")
    extract: dict[str, str] = Field(default_factory=dict, description="External IDs: name -> JMESPath expression.")
    enforce: Literal["record", "request"] = Field(
        "record", description="record: only record violations; request: reject a request that breaks its contract with 422."
    )


class HandoffCapture(_Model):
    max_body_bytes: int | None = Field(
        None, ge=0, description="Body capture cap for this handoff (default: capture.max_body_bytes)."
    )


class Handoff(_Model):
    """A named step of a workflow: one upstream, one method and path template."""

    upstream: str = Field(description="Name of the upstream (a key of `upstreams`) this handoff calls.")
    match: str = Field(description="'METHOD /path/{param}' ('*' or no method matches any method).")
    safety: Literal["safe_to_repeat", "safe_once", "never_repeat"] = Field(
        "safe_to_repeat",
        description="Retry safety of the step, recorded with each call (alerts flag repeated never_repeat steps).",
    )
    step: str | None = Field(None, description="Workflow step label (defaults to the handoff name).")
    contract: Contract | str | None = Field(None, description="Inline contract or a path to a YAML/JSON contract file.")
    capture: HandoffCapture = Field(default_factory=HandoffCapture)
    dedup: Annotated[Dedup, Off] | None = Field(
        None,
        description="The duplicate guard; default: on (Idempotency-Key header) for never_repeat and safe_once, off for "
        "safe_to_repeat; false: off.",
    )
    retry: Annotated[Retry, Off] | None = Field(
        None, description="Retries for this handoff (default: its upstream's; only safe_to_repeat calls are retried)."
    )
    loops: Loops | None = Field(None, description="Loop detection for this handoff (default: the top-level `loops`).")

    @field_validator("match")
    @classmethod
    def _check_match(cls, v: str) -> str:
        m = _MATCH_RE.match(v.strip())
        if not m:
            raise ValueError("must look like 'POST /v1/charges' or 'GET /contacts/{id}'")
        return v.strip()

    @property
    def method(self) -> str:
        m = _MATCH_RE.match(self.match)
        assert m
        return m.group("method") or "*"

    @property
    def path_template(self) -> str:
        m = _MATCH_RE.match(self.match)
        assert m
        return m.group("path")


def _all_detectors() -> list[str]:
    return list(DETECTOR_NAMES)


class Capture(_Model):
    max_body_bytes: int = Field(64 * 1024, ge=0, description="Bytes of each body kept for the record.")
    redact_headers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_HEADERS), description="Header names whose values are redacted in the record."
    )
    redact_header_parts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_HEADER_PARTS),
        description="A header whose lower-cased name contains one of these is redacted too.",
    )
    redact_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_KEYS), description="JSON keys redacted at any depth."
    )
    redact_query: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_QUERY),
        description="Query parameter names redacted from recorded URLs (plus any containing token/secret/password/key).",
    )
    redact_keys_extra: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_KEYS_EXTRA),
        description="More body keys redacted like redact_keys (set [] to use redact_keys alone).",
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOW_HEADERS),
        description="Header names never redacted, for every upstream (idempotency keys are recorded in their own column).",
    )
    redact_cards: bool = Field(default=True, description="Redact Luhn-valid card numbers anywhere in captured bodies and URLs.")
    secret_detectors: list[str] = Field(
        default_factory=_all_detectors,
        description="Credential shapes redacted anywhere in bodies, URLs, header values and error texts "
        "(detect-secrets' patterns; README 'Redaction' lists them). Remove a name to keep that shape readable.",
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions redacted anywhere like secret_detectors (group 1 when present, else the match).",
    )
    scrub_min_length: int = Field(
        default=6,
        ge=1,
        description="Secret values shorter than this are not scrubbed from the rest of the exchange (avoids mangling text).",
    )
    keep_bodies: Literal["all", "failures", "sample"] = Field(
        "all",
        description="Whose bodies and headers are recorded: all calls; failures (every call whose outcome is not ok); "
        "sample (failures, plus the ok calls of a deterministic share `ok_sample_rate` of run IDs, so a sampled run is "
        "whole). Decided once the outcome is known: bodies of ok calls not kept are parsed for the contract but never "
        "redacted, rendered or stored (their rows say attributes.bodies = not_kept).",
    )
    ok_sample_rate: float = Field(
        0.01, ge=0, le=1, description="keep_bodies: sample — the share of run IDs whose ok calls keep their bodies (0-1)."
    )

    @field_validator("secret_detectors")
    @classmethod
    def _known_detectors(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in DETECTOR_NAMES]
        if unknown:
            raise ValueError(f"unknown secret detector {', '.join(unknown)}; known: {', '.join(DETECTOR_NAMES)}")
        return v

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"redact_patterns entry {p!r} is not a valid regular expression: {e}") from None
        return v


class Server(_Model):
    host: str = Field("127.0.0.1", description="Proxy listen address (0.0.0.0 in containers).")
    port: int = Field(8080, ge=0, le=65535, description="Proxy port (0: ephemeral).")
    admin_host: str = Field(
        "127.0.0.1", description="Admin listener address (loopback by default; any other address requires `admin.token`)."
    )
    admin_port: int = Field(
        9090, ge=0, le=65535, description="Admin port: health, metrics, runs API and run pages (0: ephemeral)."
    )
    run_id_header: str = Field("X-Run-ID", description="Header carrying the run ID.")
    max_header_bytes: int = Field(8190, ge=1024, description="Max size of one request header line.")
    max_request_body_bytes: int | None = Field(
        None, ge=0, description="Reject larger request bodies with 413 (None: unlimited, streamed)."
    )
    header_timeout: Duration = Field(
        10.0,
        gt=0,
        description="A request's line and headers must arrive within this long of its first byte (slowloris), else "
        "408 problem+json and the connection is closed. Both listeners.",
    )
    keepalive_timeout: Duration = Field(
        75.0,
        gt=0,
        description="An idle connection (no request in progress or arriving) is closed after this long, as nginx's "
        "keepalive_timeout. Both listeners.",
    )
    max_connections: int = Field(
        1024,
        ge=1,
        description="Open connections per listener; a connection beyond it gets its request answered 503 problem+json "
        "(Retry-After: 1) and is closed. Keep it under the process's open-files limit (ulimit -n).",
    )
    max_inflight_body_bytes: int = Field(
        128 << 20,
        ge=0,
        description="Memory all in-flight request bodies may hold in Seamline (what is buffered and captured of each, "
        "reserved when its headers arrive); a request that would go over gets 503 problem+json (class overloaded).",
    )
    instance: str | None = Field(None, description="proxy_instance recorded on each event (default: hostname).")
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="Proxy processes sharing the port (SO_REUSEPORT) under one supervisor; `--workers` overrides it. "
        "1: one process, no supervisor. Each worker records as `<instance>/w<i>` with its own spool `<spool_dir>/worker-<i>`; "
        'the guards\' state needs `redis_url` (README "Every core: --workers").',
    )
    client_tokens: dict[str, str] = Field(
        default_factory=dict, description="Optional: bearer tokens apps must send in X-Seamline-Token, token -> app name."
    )


class Storage(_Model):
    clickhouse_url: str = Field(
        DEFAULT_CLICKHOUSE_URL,
        description="chdb:///path (embedded) or http(s)://user:pass@host:8123/db (ClickHouse server). "
        "Env: SEAMLINE_CLICKHOUSE_URL.",
    )
    database: str = Field("seamline", description="Database for Seamline's tables (a URL path overrides it).")
    embedded_engine: Literal["process", "thread"] = Field(
        "process",
        description="Where embedded ClickHouse (chdb) runs: a child process owned by the sidecar, off the proxy's event loop and "
        "core (recommended), or a thread of the proxy process.",
    )
    embedded_cpus: list[int] | None = Field(
        None, description="CPUs the embedded ClickHouse process may use (Linux), e.g. [2, 3]; default: those of the sidecar."
    )
    enabled: bool = Field(True, description="Record handoffs (false: proxy only).")
    queue_size: int = Field(50_000, ge=1, description="Events held in memory before spilling to the spool.")
    batch_size: int = Field(2_000, ge=1, description="Rows per batch: a batch is sealed at this size or after flush_interval_ms.")
    max_insert_bytes: int = Field(
        32 << 20,
        ge=0,
        le=256 << 20,
        description="When sealed batches queue up behind a slow insert, the next insert takes as many as fit in this "
        "many bytes (group commit): fewer, larger parts, which ClickHouse merges with far less work. A failed insert "
        "is spooled as it was sent, so inserts are also kept under a quarter of spool_max_bytes. 0: one insert per batch.",
    )
    flush_interval_ms: int = Field(500, ge=1, description="Max time an event waits in memory.")
    max_unacked_ms: int = Field(
        1000,
        ge=1,
        description="An event ClickHouse has not acknowledged within this long (the sink stalled, slow or frozen) is "
        "written to the spool (write-ahead) while its insert goes on, and skipped there once acknowledged: on SIGKILL "
        'at most the events of the last max_unacked_ms + flush_interval_ms are lost (README "Delivery guarantee").',
    )
    unacked_degraded_after: Duration = Field(
        5.0,
        gt=0,
        description="/readyz reports degraded (reason `unacked_too_long`) while the oldest event ClickHouse has not "
        "acknowledged (seamline_record_oldest_unacked_seconds) is older than this, e.g. `5s`.",
    )
    spool_dir: str = Field("./.seamline/spool", description="Durable on-disk spool for batches the sink could not take.")
    spool_max_bytes: int = Field(
        1 << 30, ge=1 << 16, description="Spool size cap; beyond it events are dropped and counted (loudly)."
    )
    ttl_days: int = Field(30, ge=1, description="Retention of handoff metadata.")
    body_ttl_days: int = Field(7, ge=1, description="Retention of captured bodies and headers (<= ttl_days).")
    cluster: str | None = Field(None, description="ClickHouse cluster name for ReplicatedMergeTree + Distributed DDL.")

    @field_validator("clickhouse_url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme not in ("chdb", "http", "https"):
            raise ValueError("must start with chdb:// (embedded) or http(s):// (ClickHouse server)")
        return v

    @field_validator("embedded_cpus")
    @classmethod
    def _check_cpus(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 0):
            raise ValueError("must be a non-empty list of CPU numbers (0, 1, …), or null to inherit the sidecar's")
        return v

    @model_validator(mode="after")
    def _check_ttls(self) -> Storage:
        if self.body_ttl_days > self.ttl_days:
            raise ValueError("body_ttl_days must be <= ttl_days")
        return self


class Telemetry(_Model):
    service_name: str = Field("seamline", description="OpenTelemetry service.name of Seamline's spans.")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP endpoint; defaults to OTEL_EXPORTER_OTLP_ENDPOINT.")


class Config(BaseSettings):
    """The whole of `seamline.yaml`."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="SEAMLINE_",
        env_nested_delimiter="__",
    )

    upstreams: dict[str, Upstream] = Field(
        default_factory=dict, description="The external APIs, by name; the name is the first path segment in reverse mode."
    )
    handoffs: dict[str, Handoff] = Field(
        default_factory=dict,
        description="Named handoffs, matched on an upstream's method and path; calls matching none record as `<upstream>.other`.",
    )
    server: Server = Field(default_factory=Server, description="The proxy and admin listeners.")
    capture: Capture = Field(default_factory=Capture, description="What is kept of each exchange, and what is redacted from it.")
    storage: Storage = Field(default_factory=Storage, description="Where and how handoffs are recorded.")
    telemetry: Telemetry = Field(default_factory=Telemetry, description="OpenTelemetry spans.")
    admin: Admin = Field(default_factory=Admin, description="Who may read the admin listener (run API, run pages, metrics).")
    loops: Loops = Field(default_factory=Loops, description="Loop detection: calls per run per handoff.")
    redis_url: str | None = Field(
        None,
        description="Redis shared by several Seamline replicas for the guards' state (SEAMLINE_REDIS_URL), e.g. "
        "redis://redis:6379/0; unset: in-process state.",
    )
    redis_timeout: Duration = Field(
        2.0,
        gt=0,
        description="Longest a guard waits for Redis before treating it as down (then each guard's policy); "
        "2 s: a burst of 200 guarded calls saw Redis round trips up to ~1.5 s on a loaded host (bench/redis_rtt.py).",
    )
    # What the loader read from the upstreams' `openapi` documents (seamline.validate.openapi.OpenAPISpecs): set by
    # `derive_handoffs`, carried by model_copy and pickling (to the engine process), never a config key.
    _openapi: Any = PrivateAttr(default=None)

    @property
    def openapi_specs(self) -> Any:
        return self._openapi

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file.
        return (env_settings, init_settings)

    @field_validator("upstreams")
    @classmethod
    def _check_upstream_names(cls, v: dict[str, Upstream]) -> dict[str, Upstream]:
        for name in v:
            if not _NAME_RE.match(name) or "." in name:
                raise ValueError(f"upstream name {name!r} must be letters, digits, '_' or '-' (it is the first path segment)")
        return v

    @model_validator(mode="after")
    def _check_refs(self) -> Config:
        for name, h in self.handoffs.items():
            if not _NAME_RE.match(name):
                raise ValueError(f"handoffs.{name}: name must be letters, digits, '_', '.', '-'")
            if h.upstream not in self.upstreams:
                known = ", ".join(sorted(self.upstreams)) or "none configured"
                raise ValueError(f"handoffs.{name}.upstream: unknown upstream {h.upstream!r} (known: {known})")
        return self

    @model_validator(mode="after")
    def _check_workers(self) -> Config:
        from seamline.config.workers import refusal

        if (why := refusal(self)) is not None:
            raise ValueError(why)
        return self

    @model_validator(mode="after")
    def _check_admin_exposure(self) -> Config:
        # The run API serves every recorded payload: off loopback it is never open.
        host = self.server.admin_host
        if not self.admin.enabled and not is_loopback_host(host):
            raise ValueError(
                f"server.admin_host: {host or '(all interfaces)'!r} is not a loopback address and no admin token is set, "
                "so anyone who can reach the admin port could read every recorded payload; set admin.token_file (or "
                f"admin.token, or SEAMLINE_ADMIN_TOKEN in the environment; {TOKEN_HINT}), or bind admin_host to 127.0.0.1"
            )
        return self

    @model_validator(mode="after")
    def _check_shared_hosts(self) -> Config:
        # Forward mode finds an upstream by scheme + host + port, then by the longest base path prefixing the
        # request path: two upstreams equal in all four could not be told apart. Compared as yarl normalises them
        # (host lower-cased, default port 80/443 made explicit, trailing '/' dropped by _check_base_url).
        seen: dict[tuple[str, str, int, str], str] = {}
        for name, up in self.upstreams.items():
            u = up.url
            key = (u.scheme, u.host or "", u.port or 0, u.raw_path.rstrip("/"))
            first = seen.setdefault(key, name)
            if first != name:
                # Rebuilt from the parsed parts: a base_url's userinfo (credentials) never reaches the message.
                host = f"[{key[1]}]" if ":" in key[1] else key[1]
                both = f"{key[0]}://{host}:{key[2]}" + (key[3] or ", no base path")
                raise ValueError(
                    f"upstreams.{name}.base_url: same scheme, host, port and base path as upstreams.{first}.base_url "
                    f"(both {both}), so forward mode could not tell {first!r} and {name!r} apart; "
                    "give one a distinct base path, or merge them"
                )
        return self
