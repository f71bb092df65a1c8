"""SIP URIs, name-addr and Via values."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.sip.address import NameAddr, SipUri, Via
from media_worker.sip.errors import RemoteProtocolError


@pytest.mark.parametrize(
    ("text", "user", "host", "port", "transport"),
    [
        ("sip:vm@127.0.0.1:5080", "vm", "127.0.0.1", 5080, "udp"),
        ("sip:127.0.0.1;lr", None, "127.0.0.1", None, "udp"),
        ("sip:alice:pw@example.com;transport=TCP", "alice", "example.com", None, "tcp"),
        ("sip:+4930123;user=phone@[2001:db8::1]:5060", "+4930123;user=phone", "[2001:db8::1]",
         5060, "udp"),
        ("sips:bob@example.com", "bob", "example.com", None, "tls"),
        ("SIP:vm@h?subject=hi", "vm", "h", None, "udp"),
    ],
)  # fmt: skip
def test_sip_uri(text: str, user: str | None, host: str, port: int | None, transport: str) -> None:
    uri = SipUri.parse(text)
    assert (uri.user, uri.host, uri.port, uri.transport) == (user, host, port, transport)
    assert SipUri.parse(str(uri)) == uri


@pytest.mark.parametrize(
    "text", ["tel:+4930", "sip:", "sip:a@h:99999", "sip:a@h:port", "mailto:a@b", "sip:a@[::1"]
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        SipUri.parse(text)


def test_name_addr_forms() -> None:
    full = NameAddr.parse('"Bob \\"B\\" Smith" <sip:bob@example.com;transport=tcp>;tag=abc;x')
    assert full.display == 'Bob "B" Smith'
    assert full.uri == "sip:bob@example.com;transport=tcp"
    assert full.tag == "abc"
    assert NameAddr.parse(str(full)) == full
    bare = NameAddr.parse("sip:alice@example.com;tag=1")
    assert (bare.uri, bare.tag, bare.display) == ("sip:alice@example.com", "1", None)
    unquoted = NameAddr.parse("Alice <sip:alice@h>")
    assert unquoted.display == "Alice"
    assert NameAddr.parse("<sip:a@h>").with_tag("t2").tag == "t2"
    assert NameAddr.parse("<sip:a@h>;tag=1").with_tag("2").params == (("tag", "2"),)
    with pytest.raises(RemoteProtocolError, match="unterminated"):
        NameAddr.parse("<sip:a@h")


def test_via() -> None:
    via = Via.parse("SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK3c8d;rport")
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "127.0.0.1",
        5071,
        "z9hG4bK3c8d",
    )
    assert via.param("rport") == ""
    filled = via.with_param("rport", "5071").with_param("received", "10.0.0.1")
    assert (
        str(filled) == "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK3c8d;rport=5071;received=10.0.0.1"
    )
    assert Via.parse("SIP / 2.0 / tcp [::1]").host == "[::1]"
    with pytest.raises(RemoteProtocolError, match="malformed Via"):
        Via.parse("SIP/2.0 nothing")


@given(st.text(max_size=60))
def test_fuzz_parsers_raise_only_protocol_errors(text: str) -> None:
    for parser in (SipUri.parse, NameAddr.parse, Via.parse):
        with contextlib.suppress(RemoteProtocolError):
            parser(text)
