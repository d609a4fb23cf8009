"""Route resolution: handoff matching by method and path template, `<upstream>.other` fallback."""

from __future__ import annotations

import pytest

from seamline.config import Config
from seamline.errors import BadRequest, UnknownUpstream
from seamline.routing import Router


@pytest.fixture
def router() -> Router:
    return Router(Config(
        upstreams={"crm": {"base_url": "https://crm.example/api"}},
        handoffs={
            "crm.get_contact": {"upstream": "crm", "match": "GET /contacts/{id}"},
            "crm.me": {"upstream": "crm", "match": "GET /contacts/me"},
            "crm.any_notes": {"upstream": "crm", "match": "/contacts/{id}/notes"},
        },
    ))


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
