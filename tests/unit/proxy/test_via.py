"""The Via pseudonym and the parsing of Via members (RFC 9110 §7.6.3)."""

from __future__ import annotations

from seamline.proxy.via import names, pseudonym


def test_pseudonym_is_a_token_named_after_the_instance() -> None:
    assert pseudonym("sc-1.prod") == "seamline-sc-1.prod"
    assert pseudonym("host name/with@odd chars") == "seamline-host-name-with-odd-chars"
    assert pseudonym("") == "seamline-proxy"


def test_names_reads_received_by_of_every_member_of_every_line() -> None:
    assert names(["1.0 fred, 1.1 p.example.net (Apache/1.1)", "HTTP/2 seamline-a"]) == ["fred", "p.example.net", "seamline-a"]
    assert names(["garbage", " , "]) == []
