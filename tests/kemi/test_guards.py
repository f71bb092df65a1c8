"""kemi.guards: the pure decisions behind the proxy's refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi.guards import (
    BODY_TOO_LARGE,
    ROUTE_THROUGH_US,
    ROUTE_TO_WORKER,
    TOO_MANY_MEDIA,
    UNREADABLE_BODY,
    Hop,
    auth_failure_keys,
    ban_due,
    body_refusal,
    contact_uri,
    counts_as_failure,
    domain,
    has_address_host,
    hop_address,
    media_sections,
    route_refusal,
    same_target,
    split_route_set,
    toward_peer,
    without_trailing_dot,
)

US, WORKER, ELSEWHERE = Hop(True, False), Hop(False, True), Hop(False, False)


def test_media_sections_count_m_lines_only_at_line_starts() -> None:
    sdp = "v=0\r\nm=audio 1 RTP/AVP 0\r\na=x:m=video\r\nm=video 2 RTP/AVP 96\r\n"
    assert media_sections(sdp) == 2
    assert media_sections("") == 0


def test_body_refusals() -> None:
    limits = {"max_body": 100, "max_media": 2}
    assert body_refusal(101, "", **limits) is BODY_TOO_LARGE
    assert body_refusal(10, None, **limits) is UNREADABLE_BODY
    assert body_refusal(50, "m=a\nm=b\nm=c\n", **limits) is TOO_MANY_MEDIA
    assert body_refusal(50, "m=a\nm=b\n", **limits) is None
    assert (BODY_TOO_LARGE.status, TOO_MANY_MEDIA.status) == (488, 488)


def test_route_sets_are_split_outside_angle_brackets() -> None:
    assert split_route_set(["<sip:a;lr>, <sip:b,c;lr>", "sip:d;lr", " "]) == [
        "sip:a;lr",
        "sip:b,c;lr",
        "sip:d;lr",
    ]


@pytest.mark.parametrize(
    ("ruri", "routes", "refusal"),
    [
        (ELSEWHERE, [], None),
        (US, [US], None),
        (US, [ELSEWHERE], None),  # a preloaded route elsewhere: removed, not followed
        (WORKER, [], ROUTE_TO_WORKER),
        (US, [US, WORKER], ROUTE_TO_WORKER),
        (US, [US, ELSEWHERE], ROUTE_THROUGH_US),
        (US, [US, US, ELSEWHERE], ROUTE_THROUGH_US),
    ],
)
def test_route_refusals(ruri: Hop, routes: list[Hop], refusal: object) -> None:
    assert route_refusal(ruri, routes) is refusal


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:alice@lab.example.", "sip:alice@lab.example"),
        ("sip:alice@lab.example.:5060;transport=tcp", "sip:alice@lab.example:5060;transport=tcp"),
        ("sip:lab.example..", "sip:lab.example"),
        ("sips:bob@LAB.example.?subject=x", "sips:bob@LAB.example?subject=x"),
        ("sip:alice@lab.example", "sip:alice@lab.example"),
        ("sip:a.b.@lab.example", "sip:a.b.@lab.example"),  # a user part keeps its dot
        ("", ""),
    ],
)
def test_without_trailing_dot(uri: str, expected: str) -> None:
    assert without_trailing_dot(uri) == expected


@given(st.text())
def test_without_trailing_dot_takes_any_text(uri: str) -> None:
    assert isinstance(without_trailing_dot(uri), str)


@given(st.lists(st.text()))
def test_split_route_set_takes_any_text(values: list[str]) -> None:
    assert all(isinstance(uri, str) for uri in split_route_set(values))


def test_domains_and_auth_failures() -> None:
    assert domain("lab.example.") == domain("lab.example") == "lab.example"
    assert auth_failure_keys("192.0.2.1", "alice@lab.example") == (
        "ip:192.0.2.1",
        "user:alice@lab.example",
    )
    assert counts_as_failure(-2)
    assert counts_as_failure(-3)
    assert not any(counts_as_failure(r) for r in (-1, -4, -5, -6, -8))  # stale, reused...
    assert ban_due(3, 1, 3)
    assert ban_due(1, 3, 3)
    assert not ban_due(2, 2, 3)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:127.0.0.1:5080;lr", True),
        ("sip:voicemail@192.0.2.1", True),
        ("sip:[2001:db8::1]:5060;lr", True),
        ("sip:gw.example;lr", False),
        ("sip:127.0.0.1.example", False),
        ("sip:[bad", False),
        ("", False),
    ],
)
def test_has_address_host(uri: str, expected: bool) -> None:
    assert has_address_host(uri) is expected


@given(st.text())
def test_has_address_host_takes_any_text(uri: str) -> None:
    assert isinstance(has_address_host(uri), bool)


@pytest.mark.parametrize(
    ("value", "uri"),
    [
        ("<sip:carol@192.0.2.5:5070;ob>;expires=60", "sip:carol@192.0.2.5:5070;ob"),
        ('"Carol" <sip:carol@192.0.2.5>', "sip:carol@192.0.2.5"),
        ("sip:carol@192.0.2.5;expires=60", "sip:carol@192.0.2.5"),
        ("sip:a@192.0.2.5, sip:b@192.0.2.6", "sip:a@192.0.2.5"),
        ("*", None),
        ("", None),
        (None, None),
    ],
)
def test_contact_uri(value: str | None, uri: str | None) -> None:
    assert contact_uri(value) == uri


@pytest.mark.parametrize(
    ("uri", "peer", "same"),
    [
        ("sip:carol@192.0.2.5:5060", "sip:carol@192.0.2.5", True),
        ("sip:carol@192.0.2.5;alias=198.51.100.7~5060~1", "sip:carol@192.0.2.5;ob", True),
        ("SIP:carol@Phone.Example.:5060", "sip:carol@phone.example", True),
        ("sip:carol@192.0.2.5;transport=tcp", "sip:carol@192.0.2.5", False),
        ("sip:+4930123@192.0.2.5", "sip:carol@192.0.2.5", False),
        ("sip:carol@192.0.2.6", "sip:carol@192.0.2.5", False),
        ("sips:carol@192.0.2.5", "sip:carol@192.0.2.5", False),
        ("tel:+4930123", "sip:carol@192.0.2.5", False),
        ("sip:carol@[2001:db8::1]:5062", "sip:carol@[2001:db8::1]:5062", True),
    ],
)
def test_same_target(uri: str, peer: str, same: bool) -> None:
    assert same_target(uri, peer) is same


def test_hop_address_follows_an_alias() -> None:
    assert hop_address("sip:carol@10.0.0.5;alias=192.0.2.9~40000~1") == ("192.0.2.9", 40000)
    assert hop_address("sip:192.0.2.9;lr") == ("192.0.2.9", 5060)


def test_toward_peer() -> None:
    peers = ["sip:carol@192.0.2.5:5070", "sip:carol@192.0.2.6"]
    assert toward_peer("sip:carol@192.0.2.6", None, peers)
    assert toward_peer("sip:carol@192.0.2.5:5070", "sip:192.0.2.5:5070", peers)
    assert not toward_peer("sip:carol@192.0.2.5:5070", "sip:198.51.100.7:5060", peers)
    assert not toward_peer("sip:+4930123@198.51.100.7", None, peers)
    assert not toward_peer("sip:carol@192.0.2.6", None, [])


def test_toward_peer_through_a_proxy_of_the_callee() -> None:
    peers, hops = ["sip:dave@203.0.113.9"], ["sip:203.0.113.1;lr"]
    assert toward_peer("sip:dave@203.0.113.9", "sip:203.0.113.1;lr", peers, hops)
    assert not toward_peer("sip:dave@203.0.113.9", "sip:198.51.100.7;lr", peers, hops)
    assert not toward_peer("sip:+4930123@198.51.100.7", "sip:203.0.113.1;lr", peers, hops)


@pytest.mark.parametrize("port", ["²", "٥٠٦٠", "+5060", "5_060", " 5060", "65536", "9" * 30])
def test_a_port_is_ascii_digits_within_range(port: str) -> None:
    assert hop_address(f"sip:bob@192.0.2.1;alias=198.51.100.7~{port}~1") == (
        "192.0.2.1",
        5060,
    )
    assert not same_target(f"sip:bob@192.0.2.1:{port}", "sip:bob@192.0.2.1:5060")
