"""The P-App-Name / P-App-Param contract, exactly as SEMS reads it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.apps.errors import AppParamError
from media_worker.apps.params import (
    AppRequest,
    app_request,
    parse_app_param,
)
from media_worker.config import AppsConfig, MappingRule
from media_worker.sip.actions import Rejection
from media_worker.sip.message import Request, parse_message

ROUTING = AppsConfig()
KAMAILIO_INVITE = Path(__file__).parent.parent / "data" / "sip" / "kamailio-invite-p-app.txt"


def invite(name: str | None, param: str | None, uri: str = "sip:bob@lab.example") -> Request:
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
        'From: "Alice" <sip:alice@lab.example>;tag=a1',
        "To: <sip:bob@lab.example>",
        "Call-ID: c1",
        "CSeq: 1 INVITE",
    ]
    if name is not None:
        lines.append(f"P-App-Name: {name}")
    if param is not None:
        lines.append(f"P-App-Param: {param}")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def accepted(result: AppRequest | Rejection) -> AppRequest:
    assert isinstance(result, AppRequest), result
    return result


def test_kamailio_capture() -> None:
    message = parse_message(KAMAILIO_INVITE.read_bytes())
    assert isinstance(message, Request)
    request = accepted(app_request(message, ROUTING))
    assert (request.app, request.user, request.domain, request.mode) == (
        "voicemail",
        "bob",
        "lab.example",
        "both",
    )
    assert (request.email, request.language, request.typ) == ("bob@lab.example", "en", "vm")
    assert request.sender == "<sip:alice@127.0.0.1>"


def test_short_and_long_keys_case_and_quotes() -> None:
    short = accepted(
        app_request(invite("voicemail", "usr=bob;dom=lab.example;mod=box;snd='Carol';"), ROUTING)
    )
    long = accepted(
        app_request(
            invite(
                "VoiceMail",
                'User=bob;DOMAIN=lab.example;Mode=box;Sender="Carol";Email-Address=b@x;'
                "Language=de;Type=busy;PIN=1234",
            ),
            ROUTING,
        )
    )
    assert (short.user, short.domain, short.mode, short.sender) == (
        "bob",
        "lab.example",
        "box",
        "Carol",
    )
    assert (long.user, long.domain, long.mode, long.sender) == (
        "bob",
        "lab.example",
        "box",
        "Carol",
    )
    assert (long.email, long.language, long.typ, long.pin) == ("b@x", "de", "busy", "1234")


def test_uid_and_did_name_the_mailbox() -> None:
    request = accepted(
        app_request(invite("voicebox", "usr=bob;dom=lab.example;uid=42;did=7"), ROUTING)
    )
    assert (request.user, request.domain) == ("42", "7")
    assert (request.usr, request.dom, request.uid, request.did) == ("bob", "lab.example", "42", "7")


def test_voicemail_falls_back_to_the_request_uri_voicebox_does_not() -> None:
    vm = accepted(app_request(invite("voicemail", "mod=box"), ROUTING))
    assert (vm.user, vm.domain) == ("bob", "lab.example")
    refused = app_request(invite("voicebox", "dom=lab.example"), ROUTING)
    assert refused == Rejection(400, "P-App-Param: no user (usr or uid)")


def test_sender_defaults_to_from_without_its_tag() -> None:
    request = accepted(app_request(invite("voicemail", "mod=box"), ROUTING))
    assert request.sender == '"Alice" <sip:alice@lab.example>'


def test_only_the_first_param_header_counts() -> None:
    message = invite("voicemail", "usr=bob;mod=box")
    message.headers.add("P-App-Param", "usr=mallory;mod=box")
    assert accepted(app_request(message, ROUTING)).user == "bob"


def test_extra_keys_are_kept_for_templates() -> None:
    request = accepted(app_request(invite("voicemail", "mod=box;Company=ACME"), ROUTING))
    assert request.extras == {"company": "ACME"}


@pytest.mark.parametrize(
    ("name", "param", "refusal"),
    [
        (None, "usr=bob", Rejection(404, "No application selected (P-App-Name missing)")),
        ("conference", "usr=bob", Rejection(404, "Unknown application 'conference'")),
        ("voicemail", "usr=bob;mod=tape", Rejection(400, "P-App-Param: unknown mode 'tape'")),
        ("voicemail", "usr=bob;mod=both", Rejection(400, "P-App-Param: mode both needs an email address (eml)")),
        ("voicemail", "usr=bob;mod=voicemail;eml=nobody", Rejection(400, "P-App-Param: mode voicemail needs an email address (eml)")),
        ("voicemail", "usr=../etc;mod=box", Rejection(400, "Bad user: must not contain '/' or '\\'")),
        ("voicemail", "usr=..;mod=box", Rejection(400, "Bad user: must not be '.' or '..'")),
        ("voicemail", "usr=bob;dom=x-prompts;mod=box", Rejection(400, "Bad domain: must not end in '-prompts' (reserved)")),
        ("voicemail", "usr=bob;mod=box;typ=a/b", Rejection(400, "Bad greeting type: must not contain '/' or '\\'")),
        ("voicemail", "usr=bob;mod=box;lng=../../x", Rejection(400, "P-App-Param: bad language '../../x'")),
        ("voicemail", "usr=bob;usr=eve;mod=box", Rejection(400, "P-App-Param: 'usr' given twice")),
        ("voicemail", "usr=bob;garbage;mod=box", Rejection(400, "P-App-Param: malformed item 'garbage'")),
        ("voicebox", "usr=bob", Rejection(400, "P-App-Param: no domain (dom or did)")),
    ],
)  # fmt: skip
def test_refusals_name_the_problem(name: str | None, param: str, refusal: Rejection) -> None:
    uri = "sip:1000@lab.example" if name == "voicebox" else "sip:bob@lab.example"
    assert app_request(invite(name, param, uri), ROUTING) == refusal


def test_nul_and_control_characters_never_pass() -> None:
    message = invite("voicemail", "usr=bo\x01b;mod=box")
    refused = app_request(message, ROUTING)
    assert isinstance(refused, Rejection)
    assert refused.status == 400


def test_simple_mode_and_uri_mapping() -> None:
    mapped = AppsConfig(
        mapping=(MappingRule(r"1000", "voicebox"), MappingRule(r"1001", "annrecorder"))
    )
    box = accepted(
        app_request(invite(None, "usr=bob;dom=lab.example", "sip:1000@lab.example"), mapped)
    )
    assert box.app == "voicebox"
    simple = AppsConfig(simple_mode="voicemail", default_mode="box")
    vm = accepted(app_request(invite(None, None), simple))
    assert (vm.app, vm.mode, vm.user) == ("voicemail", "box", "bob")


def test_a_mapping_group_names_the_mailbox() -> None:
    mapped = AppsConfig(mapping=(MappingRule(r"\*98(?P<user>.+)", "voicebox"),))
    box = accepted(app_request(invite(None, None, "sip:*98bob@lab.example"), mapped))
    assert (box.app, box.user, box.domain) == ("voicebox", "bob", "lab.example")
    # What the proxy says still wins.
    told = accepted(
        app_request(invite(None, "usr=carol;dom=x.org", "sip:*98bob@lab.example"), mapped)
    )
    assert (told.user, told.domain) == ("carol", "x.org")


def test_parse_app_param_directly() -> None:
    assert parse_app_param(" usr = bob ; eml='a;b@x' ;") == ({"user": "bob", "email": "a;b@x"}, {})
    with pytest.raises(AppParamError, match="malformed item '=x'"):
        parse_app_param("=x")


_param_text = st.text(
    alphabet=st.sampled_from(
        [*"usrdomuideml=;'\"@. /\\0129", "\u00b2", "\u0663", "\udcff", "\x00", "\x7f", "\u00e9"]
    ),
    max_size=60,
)


@given(st.one_of(st.text(max_size=100), _param_text))
def test_fuzz_parse_app_param_raises_only_its_error(text: str) -> None:
    with contextlib.suppress(AppParamError):
        _, extras = parse_app_param(text)
        assert all(key == key.lower() for key in extras)


@given(
    name=st.sampled_from(["voicemail", "voicebox", "annrecorder", "x\u00b2"]),
    param=st.one_of(
        _param_text,
        st.tuples(_param_text, _param_text).map(lambda p: f"usr={p[0]};dom={p[1]};eml=a@b"),
        st.tuples(_param_text, _param_text).map(lambda p: f"uid={p[0]};did={p[1]};pin={p[1]}"),
    ),
)
def test_fuzz_app_request_refuses_or_accepts(name: str, param: str) -> None:
    """Any P-App-Param (surrogate-escaped bytes, odd digits, controls) gives an AppRequest
    with safe identity values or a Rejection; nothing else escapes."""
    request = invite(name, None)
    request.headers.add("P-App-Param", param)
    result = app_request(request, ROUTING)
    if isinstance(result, Rejection):
        assert 400 <= result.status < 500
        return
    for value in (result.user, result.domain):
        assert value
        assert "/" not in value
        assert "\x00" not in value
        assert value not in (".", "..")
