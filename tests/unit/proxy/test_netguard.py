"""Address checks: legacy IPv4 spellings and IPv4-mapped IPv6 judged as the IPv4 address they mean."""

from __future__ import annotations

import pytest

from seamline.proxy.netguard import RefusedAddress, check_ip_literal, is_public, legacy_ipv4


@pytest.mark.parametrize(
    ("host", "means"),
    [
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("134744072", "8.8.8.8"),
    ],
)
def test_non_canonical_ipv4_literals_are_refused_even_when_private_is_allowed(host, means):
    assert legacy_ipv4(host) == means
    with pytest.raises(RefusedAddress, match=means):
        check_ip_literal(host, allow_private=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "8.8.8.8", "api.example.com", "beef.cafe", "deadbeef", ""])
def test_canonical_addresses_and_host_names_are_not_legacy(host):
    assert legacy_ipv4(host) is None


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]"])
def test_ipv4_mapped_ipv6_literals_are_checked_as_ipv4(host):
    with pytest.raises(RefusedAddress):
        check_ip_literal(host, allow_private=False)
    check_ip_literal(host, allow_private=True)


def test_ipv4_mapped_public_address_is_public():
    assert is_public("::ffff:8.8.8.8") and not is_public("::ffff:192.168.1.1")
