"""The admin listener's access control: `admin.token` / `admin.token_file` (env SEAMLINE_ADMIN_TOKEN,
SEAMLINE_ADMIN_TOKEN_FILE), and what counts as a loopback bind address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from seamline.config.guards import Duration

MIN_TOKEN_LENGTH = 16
TOKEN_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class Admin(BaseModel):
    """The run API and pages serve every recorded (redacted) payload: beyond loopback a token is required
    (docs/security.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    token: SecretStr | None = Field(
        None,
        description="Bearer token required on /api/*, /runs* and every other admin route except /healthz and /readyz "
        f"(and /metrics unless protect_metrics); at least {MIN_TOKEN_LENGTH} characters. Env: SEAMLINE_ADMIN_TOKEN.",
    )
    token_file: str | None = Field(
        None,
        description="A file holding the token (read at start-up, surrounding whitespace ignored), e.g. a Docker or "
        "Kubernetes secret; instead of `token`. Env: SEAMLINE_ADMIN_TOKEN_FILE.",
    )
    protect_metrics: bool = Field(
        False, description="Require the token on /metrics too (Prometheus: `authorization: {credentials: …}`)."
    )
    session_ttl: Duration = Field(
        43200.0, gt=0, description="Lifetime of the browser session cookie a run page login sets (12h)."
    )

    @field_validator("token")
    @classmethod
    def _check_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            _check_secret(v.get_secret_value(), "the token")
        return v

    @field_validator("token_file")
    @classmethod
    def _check_token_file(cls, v: str | None) -> str | None:
        if v is not None:
            _check_secret(read_token_file(v), f"the token in {v}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> Admin:
        if self.token is not None and self.token_file is not None:
            raise ValueError("admin: set token or token_file, not both (SEAMLINE_ADMIN_TOKEN sets token)")
        return self

    def secret(self) -> str | None:
        """The effective token (the file is read on each call: call it once, at start-up)."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return read_token_file(self.token_file)
        return None

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.token_file is not None


def read_token_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise ValueError(f"cannot read the token file {path} ({reason})") from None


def _check_secret(value: str, what: str) -> None:
    # The value itself never reaches the message: it would be printed with the config error.
    if len(value) < MIN_TOKEN_LENGTH or any(c.isspace() for c in value):
        raise ValueError(f"{what} must be at least {MIN_TOKEN_LENGTH} characters without whitespace; {TOKEN_HINT}")


def is_loopback_host(host: str) -> bool:
    """True for an address only this machine can reach: localhost, 127.0.0.0/8, ::1 (not 0.0.0.0, '', or a name)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(h)
    except ValueError:
        return False  # a host name may resolve to anything: treated as exposed
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback
