"""`admin`: the token sources, their precedence, and no admin listener beyond loopback without a token."""

from __future__ import annotations

import secrets

import pytest

from seamline.config.admin import is_loopback_host
from seamline.config.loader import ConfigError, load_config

TOKEN = secrets.token_urlsafe(32)


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch):
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN_FILE", raising=False)


def _write(tmp_path, text: str):
    p = tmp_path / "seamline.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "admin.internal", "192.168.1.2"])
def test_a_non_loopback_admin_host_without_a_token_refuses_with_file_field_and_fix(tmp_path, host):
    p = _write(tmp_path, f"server: {{admin_host: '{host}'}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert text.startswith(f"{p}: invalid configuration (1 problem)")
    assert "  server.admin_host: " in text and "not a loopback address" in text
    assert "admin.token_file" in text and "SEAMLINE_ADMIN_TOKEN" in text and "bind admin_host to 127.0.0.1" in text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"])
def test_loopback_admin_hosts_need_no_token(tmp_path, host):
    assert is_loopback_host(host)
    cfg = load_config(_write(tmp_path, f"server: {{admin_host: '{host}'}}\n"))
    assert cfg.admin.secret() is None and not cfg.admin.enabled


def test_a_token_in_the_file_the_environment_or_a_token_file_opens_any_host(tmp_path, monkeypatch):
    cfg = load_config(_write(tmp_path, f"server: {{admin_host: 0.0.0.0}}\nadmin: {{token: {TOKEN}}}\n"))
    assert cfg.admin.secret() == TOKEN and TOKEN not in repr(cfg) and TOKEN not in str(cfg.model_dump())
    secret = tmp_path / "token"
    secret.write_text(f"  {TOKEN}\n")
    cfg = load_config(_write(tmp_path, f"server: {{admin_host: 0.0.0.0}}\nadmin: {{token_file: {secret}}}\n"))
    assert cfg.admin.secret() == TOKEN
    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", TOKEN)
    assert load_config(_write(tmp_path, "server: {admin_host: 0.0.0.0}\n")).admin.secret() == TOKEN


def test_the_environment_replaces_the_files_token_source(tmp_path, monkeypatch):
    """The environment beats the file, as everywhere: SEAMLINE_ADMIN_TOKEN wins over admin.token_file, and back."""
    other = secrets.token_urlsafe(32)
    secret = tmp_path / "token"
    secret.write_text(other)
    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN", TOKEN)
    assert load_config(_write(tmp_path, f"admin: {{token_file: {secret}}}\n")).admin.secret() == TOKEN
    monkeypatch.delenv("SEAMLINE_ADMIN_TOKEN")
    monkeypatch.setenv("SEAMLINE_ADMIN_TOKEN_FILE", str(secret))
    assert load_config(_write(tmp_path, f"admin: {{token: {TOKEN}}}\n")).admin.secret() == other


@pytest.mark.parametrize(
    "admin, field, words",
    [
        ("{token: short}", "admin.token", "at least 16 characters"),
        ("{token: 'has a space in it, long enough'}", "admin.token", "without whitespace"),
        ("{token_file: /nonexistent/seamline-token}", "admin.token_file", "cannot read the token file /nonexistent"),
        ("{token: TOKEN, token_file: FILE}", "admin", "set token or token_file, not both"),
    ],
)
def test_bad_tokens_are_named_without_their_value(tmp_path, admin, field, words):
    secret = tmp_path / "token"
    secret.write_text(TOKEN)
    p = _write(tmp_path, f"admin: {admin.replace('TOKEN', TOKEN).replace('FILE', str(secret))}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert f"  {field}: " in text and words in text
    assert "short" not in text.split(f"{field}: ", 1)[1] and TOKEN not in text and "has a space" not in text


def test_an_empty_token_file_is_refused(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("\n")
    with pytest.raises(ConfigError, match=r"admin.token_file: the token in .*token must be at least 16"):
        load_config(_write(tmp_path, f"admin: {{token_file: {secret}}}\n"))
