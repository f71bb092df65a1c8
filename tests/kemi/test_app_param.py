"""kemi.app_param: the P-App-Param value the proxy builds, read back by the worker's
own parser (media_worker.apps.params.parse_app_param)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi.app_param import (
    ParamError,
    Profile,
    build_app_param,
    preferences_from_rows,
    quote_value,
    voicemail_mode,
)
from media_worker.apps.params import parse_app_param


def profile(**preferences: str) -> Profile:
    return Profile("bob", "lab.example", preferences)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("bob", "bob"),
        ("bob@lab.example", "bob@lab.example"),
        ("sip:alice@lab.example", "sip:alice@lab.example"),
        ("a;b", '"a;b"'),
        ("Alice Smith", '"Alice Smith"'),
        ("a=b", '"a=b"'),
        ('say "hi"', "'say \"hi\"'"),
        ("it's", '"it\'s"'),
        ("<sip:a@b>;tag=1", '"<sip:a@b>;tag=1"'),
        ("Zoë", '"Zoë"'),
    ],
)
def test_quote_value(value: str, quoted: str) -> None:
    assert quote_value("snd", value) == quoted


def test_both_quote_kinds_are_refused() -> None:
    with pytest.raises(ParamError, match=r"^snd: value holds both quote characters$"):
        quote_value("snd", 'it\'s "quoted"')


@pytest.mark.parametrize("char", ["\x00", "\r", "\n", "\t", "\x1b", "\x7f"], ids=repr)
def test_control_characters_are_refused(char: str) -> None:
    with pytest.raises(ParamError, match=r"^eml: control character in value$"):
        quote_value("eml", f"bob{char}@lab.example")


def test_preferences_from_rows() -> None:
    rows = [
        ("Email", " bob@mail.example "),
        ("voicemail", "both"),
        ("email", "second@mail.example"),  # a repeated attribute: the first row wins
        ("unrelated", "x"),
        ("vm_greeting_type", "unavail"),
    ]
    assert preferences_from_rows(rows) == {
        "email": "bob@mail.example",
        "voicemail": "both",
        "vm_greeting_type": "unavail",
    }


@pytest.mark.parametrize(
    ("preferences", "mode"),
    [
        ({}, "box"),  # no email: the box, never a refusal
        ({"voicemail": "voicemail"}, "box"),
        ({"voicemail": "both"}, "box"),
        ({"voicemail": "ann"}, "ann"),
        ({"voicemail": "BOX"}, "box"),
        ({"email": "b@x"}, None),  # the worker's default mode
        ({"email": "b@x", "voicemail": "Voicemail"}, "voicemail"),
        ({"email": "b@x", "voicemail": "both"}, "both"),
        ({"email": "", "voicemail": "both"}, "box"),
    ],
)
def test_voicemail_mode(preferences: dict[str, str], mode: str | None) -> None:
    assert voicemail_mode(profile(**preferences)) == mode


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ParamError, match=r"^mod: 'fax' is not one of voicemail, box, both, ann$"):
        voicemail_mode(profile(voicemail="fax"))


def test_voicemail_param() -> None:
    param = build_app_param(
        "voicemail",
        profile(voicemail="both", email="bob@mail.example", lang="de", uid="u1", did="d1"),
        sender="sip:alice@lab.example",
    )
    assert param == (
        "usr=bob;dom=lab.example;uid=u1;did=d1;snd=sip:alice@lab.example;"
        "eml=bob@mail.example;mod=both;lng=de;typ=vm"
    )


def test_voicebox_param_carries_no_sender_email_mode_or_type() -> None:
    param = build_app_param(
        "voicebox", profile(voicemail="both", email="bob@x"), sender="sip:alice@lab.example"
    )
    assert param == "usr=bob;dom=lab.example"


def test_annrecorder_param_has_the_greeting_type() -> None:
    assert build_app_param("annrecorder", profile(vm_greeting_type="unavail")) == (
        "usr=bob;dom=lab.example;typ=unavail"
    )
    assert build_app_param("annrecorder", profile(), default_typ="busy") == (
        "usr=bob;dom=lab.example;typ=busy"
    )


def test_a_display_name_with_a_semicolon_round_trips() -> None:
    sender = '"Smith; Alice" <sip:alice@lab.example>'
    param = build_app_param("voicemail", profile(email="b@x"), sender=sender)
    known, extras = parse_app_param(param)
    assert known["sender"] == sender
    assert extras == {}


# Any text a value may hold: printable, with quotes, separators and non-ASCII.
values = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=40,
).filter(lambda v: not ("'" in v and '"' in v))


@given(user=values, domain=values, sender=values, email=values, lang=values, typ=values)
def test_build_then_parse_gives_back_the_values(
    user: str, domain: str, sender: str, email: str, lang: str, typ: str
) -> None:
    prefs = {"email": email, "lang": lang, "vm_greeting_type": typ, "voicemail": "both"}
    param = build_app_param("voicemail", Profile(user, domain, prefs), sender=sender)
    known, extras = parse_app_param(param)
    assert extras == {}
    assert known == {
        "user": user,
        "domain": domain,
        "sender": sender,
        "email": email,
        "mode": "both",
        "language": lang,
        "typ": typ,
    }


@given(st.text(min_size=1, max_size=40))
def test_quote_value_refuses_or_round_trips(value: str) -> None:
    try:
        quoted = quote_value("usr", value)
    except ParamError:
        assert any(ord(c) < 32 or ord(c) == 127 for c in value) or ("'" in value and '"' in value)
        return
    known, _ = parse_app_param(f"usr={quoted};dom=x")
    assert known == {"user": value, "domain": "x"}
