"""Route resolution: handoff matching by method and path template, `<upstream>.other` fallback; forward-mode hosts."""

from __future__ import annotations

import pytest
from yarl import URL

from seamline.config.models import Config
from seamline.errors import BadRequest, Forbidden, UnknownUpstream
from seamline.proxy.routing import Router


@pytest.fixture
def router() -> Router:
    return Router(
        Config(
            upstreams={"crm": {"base_url": "https://crm.example/api"}},
            handoffs={
                "crm.get_contact": {"upstream": "crm", "match": "GET /contacts/{id}"},
                "crm.me": {"upstream": "crm", "match": "GET /contacts/me"},
                "crm.any_notes": {"upstream": "crm", "match": "/contacts/{id}/notes"},
            },
        )
    )


def test_templates_match_and_literals_win(router):
    assert router.resolve_reverse("GET", "/crm/contacts/42").handoff.name == "crm.get_contact"
    assert router.resolve_reverse("GET", "/crm/contacts/me").handoff.name == "crm.me"
    assert router.resolve_reverse("DELETE", "/crm/contacts/7/notes").handoff.name == "crm.any_notes"


def test_unmatched_paths_get_upstream_other(router):
    t = router.resolve_reverse("POST", "/crm/contacts/42")
    assert t.handoff.name == "crm.other"
    assert str(t.url) == "https://crm.example/api/contacts/42"


def test_query_is_kept_raw(router):
    t = router.resolve_reverse("GET", "/crm/contacts/1?q=a%20b&x")
    assert t.url.raw_query_string == "q=a%20b&x"


def test_unknown_upstream(router):
    with pytest.raises(UnknownUpstream):
        router.resolve_reverse("GET", "/billing/x")


def test_dot_segments_rejected(router):
    with pytest.raises(BadRequest):
        router.resolve_reverse("GET", "/crm/a/%2e%2e/b")


# Forward mode (absolute-form targets): upstreams on one host told apart by base path; host spellings.


def _forward_router(upstreams: dict[str, str]) -> Router:
    return Router(Config(upstreams={n: {"base_url": u} for n, u in upstreams.items()}))


def _fwd(router: Router, url: str, method: str = "GET"):
    return router.resolve_forward(method, URL(url, encoded=True))


@pytest.mark.parametrize("order", [("up", "billing", "v2"), ("v2", "billing", "up")])
def test_forward_longest_base_path_wins_whatever_the_config_order(order):
    urls = {"up": "http://h.example:9000/ok", "billing": "http://h.example:9000/api", "v2": "http://h.example:9000/api/v2"}
    router = _forward_router({n: urls[n] for n in order})
    for path, name, sent in [
        ("/api/charges?x=1", "billing", "http://h.example:9000/api/charges?x=1"),
        ("/api/v2/charges", "v2", "http://h.example:9000/api/v2/charges"),
        ("/api/v20/x", "billing", "http://h.example:9000/api/v20/x"),  # segment boundaries only
        ("/ok/x", "up", "http://h.example:9000/ok/x"),
        ("/api", "billing", "http://h.example:9000/api/"),
    ]:
        t = _fwd(router, "http://h.example:9000" + path)
        assert (t.upstream_name, str(t.url)) == (name, sent), path


def test_forward_handoff_matches_the_path_below_the_chosen_base():
    router = Router(
        Config(
            upstreams={"up": {"base_url": "http://h.example/ok"}, "billing": {"base_url": "http://h.example/api"}},
            handoffs={"billing.charge": {"upstream": "billing", "match": "POST /charges"}},
        )
    )
    t = _fwd(router, "http://h.example/api/charges", "POST")
    assert (t.handoff.name, t.path) == ("billing.charge", "/charges")


def test_forward_path_under_no_base_path_of_a_shared_host_is_forbidden_naming_them():
    router = _forward_router({"up": "http://h.example/ok", "billing": "http://h.example/api"})
    for path in ("/", "/other", "/apix/y", "/o"):
        with pytest.raises(Forbidden) as e:
            _fwd(router, "http://h.example" + path)
        assert e.value.detail == (
            "h.example:80 is shared by several upstreams, told apart by base path, and the request path is under "
            "none of them; configured base paths: /ok (upstream 'up'), /api (upstream 'billing')"
        )


def test_forward_root_upstream_takes_paths_no_base_path_claims():
    router = _forward_router({"billing": "http://h.example/api", "root": "http://h.example"})
    assert _fwd(router, "http://h.example/api/x").upstream_name == "billing"
    t = _fwd(router, "http://h.example/x?q=1")
    assert (t.upstream_name, str(t.url)) == ("root", "http://h.example/x?q=1")


def test_forward_single_upstream_per_host_is_unchanged():
    router = _forward_router({"billing": "http://h.example/api", "crm": "http://crm.example:8080"})
    assert str(_fwd(router, "http://h.example/api/charges").url) == "http://h.example/api/charges"
    assert str(_fwd(router, "http://h.example/charges").url) == "http://h.example/api/charges"  # put under the base
    assert str(_fwd(router, "http://crm.example:8080/c/1").url) == "http://crm.example:8080/c/1"


def test_forward_host_case_and_default_port_match_the_config():
    router = _forward_router({"crm": "http://crm.example:80"})
    assert _fwd(router, "http://CRM.Example/c").upstream_name == "crm"
    assert _fwd(router, "http://crm.example:80/c").upstream_name == "crm"


@pytest.mark.parametrize(
    ("configured", "sent", "hint"),
    [
        ("http://localhost:9000", "http://127.0.0.1:9000/x", "localhost:9000 (upstream 'crm')"),
        ("http://127.0.0.1:9000", "http://localhost:9000/x", "127.0.0.1:9000 (upstream 'crm')"),
        ("http://[::1]:9000", "http://localhost:9000/x", "[::1]:9000 (upstream 'crm')"),
        ("http://localhost:9000", "http://[::1]:9000/x", "localhost:9000 (upstream 'crm')"),
        ("http://crm.internal:9000", "http://10.0.0.5:9000/x", "crm.internal:9000 (upstream 'crm')"),  # same port
        ("https://127.0.0.1:9443", "http://127.0.0.1:9443/x", "https://127.0.0.1:9443 (upstream 'crm')"),
    ],
)
def test_forward_host_spelled_differently_names_the_configured_spelling(configured, sent, hint):
    router = _forward_router({"crm": configured})
    with pytest.raises(Forbidden) as e:
        _fwd(router, sent)
    authority = URL(sent).raw_authority
    assert e.value.detail == (
        f"{authority} is not a configured upstream; did you mean {hint}? Forward-mode hosts must match base_url exactly"
    )


def test_forward_unrelated_host_on_a_default_port_gets_no_guess():
    router = _forward_router({"billing": "http://api.billing.example", "crm": "http://localhost:9000"})
    with pytest.raises(Forbidden) as e:
        _fwd(router, "http://evil.example/x")
    assert e.value.detail == "evil.example:80 is not a configured upstream"
    with pytest.raises(Forbidden) as e:
        _fwd(router, "http://localhost:9001/x")  # loopback, but no upstream on that port
    assert e.value.detail == "localhost:9001 is not a configured upstream"


def test_forward_hints_prefer_loopback_aliases_and_list_every_upstream_of_a_host():
    router = _forward_router(
        {
            "far": "http://other.example:9000",
            "up": "http://localhost:9000/ok",
            "billing": "http://localhost:9000/api",
        }
    )
    with pytest.raises(Forbidden) as e:
        _fwd(router, "http://127.0.0.1:9000/api/x")
    assert "did you mean localhost:9000 (upstreams 'up', 'billing') or other.example:9000 (upstream 'far')?" in e.value.detail


def test_connect_hint_accepts_any_scheme():
    router = _forward_router({"secure": "https://localhost:9443"})
    assert router.upstream_for_host("localhost", 9443) == "secure"
    assert "did you mean localhost:9443 (upstream 'secure')?" in router.unconfigured_host("127.0.0.1", 9443).detail
