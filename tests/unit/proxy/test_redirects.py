"""rewrite_location: under the base URL → the Seamline route; anything else unchanged, never re-encoded."""

from __future__ import annotations

import pytest
from yarl import URL

from seamline.proxy.redirects import RedirectBase, rewrite_location

API = RedirectBase.of("billing", URL("https://api.billing.example/v2"))
ROOT = RedirectBase.of("crm", URL("http://crm.example:8000"))
ORIGIN = "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://api.billing.example/v2/charges/ch_1", ORIGIN + "/billing/charges/ch_1"),
        ("https://API.billing.example:443/v2/charges?x=%20y#f", ORIGIN + "/billing/charges?x=%20y#f"),
        ("https://api.billing.example/v2", ORIGIN + "/billing/"),
        ("https://api.billing.example/v2?page=2", ORIGIN + "/billing/?page=2"),
        ("/v2/charges/ch_1", "/billing/charges/ch_1"),
        ("/v2/a%2Fb", "/billing/a%2Fb"),
        ("/v2x/charges", "/v2x/charges"),  # not under /v2 on a segment boundary
        ("/login", "/login"),  # outside the base path: no route reaches it
        ("http://api.billing.example/v2/x", "http://api.billing.example/v2/x"),  # another scheme
        ("https://api.billing.example:8443/v2/x", "https://api.billing.example:8443/v2/x"),  # another port
        ("https://evil.example/v2/x", "https://evil.example/v2/x"),
        ("https://user@api.billing.example/v2/x", "https://user@api.billing.example/v2/x"),
        ("//api.billing.example/v2/x", "//api.billing.example/v2/x"),  # scheme-relative: left alone
        ("charges/ch_1", "charges/ch_1"),  # relative: already resolves against the routed URL
        ("https://api.billing.example:notaport/v2", "https://api.billing.example:notaport/v2"),
    ],
)
def test_rewrite_under_a_base_path(location: str, expected: str) -> None:
    assert rewrite_location(location, API, ORIGIN) == expected


def test_root_base_url_maps_every_absolute_path() -> None:
    assert rewrite_location("/contacts/7", ROOT, ORIGIN) == "/crm/contacts/7"
    assert rewrite_location("http://crm.example:8000/contacts/7", ROOT, ORIGIN) == ORIGIN + "/crm/contacts/7"
    assert rewrite_location("http://crm.example/contacts/7", ROOT, ORIGIN) == "http://crm.example/contacts/7"


def test_without_the_clients_host_an_absolute_path_is_returned() -> None:
    assert rewrite_location("https://api.billing.example/v2/x", API, "") == "/billing/x"
