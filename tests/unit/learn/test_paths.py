"""Observed URL paths → templates: IDs of every common shape become parameters, names stay."""

from __future__ import annotations

import pytest

from seamline.learn.paths import is_id_segment, operation_slug, path_parameters, relative_path, template_path


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/charges/ch_3MtwBwLkdIwHu7ix28a3tqPa", "/v1/charges/{id}"),  # Stripe-style prefixed ID
        ("/crm/v3/objects/contacts/51", "/crm/v3/objects/contacts/{id}"),  # numeric
        ("/v1/contacts/123e4567-e89b-12d3-a456-426614174000", "/v1/contacts/{id}"),  # UUID
        ("/v1/objects/5f2b9c1e8a7d4e3b", "/v1/objects/{id}"),  # hex (Mongo-style object ID)
        ("/v1/customers/cus_9f2aB1/invoices/in_77aa01", "/v1/customers/{customer_id}/invoices/{id}"),
        ("/v1/companies/42/notes/7", "/v1/companies/{company_id}/notes/{id}"),
        ("/v1/charges", "/v1/charges"),
        ("/v2/users/me/settings", "/v2/users/me/settings"),  # names, versions stay
        ("/v1/pages/page-2", "/v1/pages/page-2"),  # a short suffix is a name, not an ID
        ("/v1/reports/deadbeef", "/v1/reports/deadbeef"),  # a hex-looking word without a digit is a name
    ],
)
def test_template_path(path, template):
    assert template_path(path) == template


def test_parameters_slug_and_base_path():
    assert path_parameters("/v1/customers/{customer_id}/invoices/{id}") == ["customer_id", "id"]
    assert operation_slug("PATCH", "/v1/contacts/{id}") == "patch_v1_contacts_id"
    assert relative_path("http://127.0.0.1:9/crm/v1/contacts/ct_1?x=1", "/crm") == "/v1/contacts/ct_1"
    assert relative_path("http://127.0.0.1:9/crmx/v1", "/crm") == "/crmx/v1"  # a prefix of a segment is no base path
    assert not is_id_segment("charges") and is_id_segment("acct_1042")
