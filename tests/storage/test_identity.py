"""Identity validation, shared by every backend."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import BadIdentity
from storage.identity import check_greeting_type, check_identity, check_mailbox
from storage.testing import HOSTILE_VALUES


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_values_are_refused(value: str) -> None:
    with pytest.raises(BadIdentity):
        check_identity("user", value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("..", "must not be '.' or '..'"),
        ("a/b", "must not contain '/' or '\\'"),
        ("a\0b", "must not contain NUL"),
        ("a\x1bb", "must not contain control character '\\x1b'"),
        ("x" * 256, "must not be longer than 255 bytes"),
        ("\ud800", "must be valid Unicode text"),
    ],
)
def test_errors_say_what_is_wrong(value: str, reason: str) -> None:
    with pytest.raises(BadIdentity) as caught:
        check_identity("user", value)
    assert caught.value.reason == reason
    assert str(caught.value).startswith("bad user ")
    assert isinstance(caught.value, ValueError)


def test_every_control_and_separator_character_is_refused() -> None:
    refused = set()
    for code in range(0x3000):
        try:
            check_identity("user", f"a{chr(code)}b")
        except BadIdentity:
            refused.add(chr(code))
    expected = {
        chr(c) for c in range(0x3000) if unicodedata.category(chr(c)) in ("Cc", "Zl", "Zp")
    } | {"/", "\\"}
    assert refused == expected


def test_non_strings_are_refused() -> None:
    with pytest.raises(BadIdentity, match="must be a string"):
        check_identity("domain", b"example.com")


@pytest.mark.parametrize("value", ["bob", "+4930123456", "bob.smith", "Jürgen", "a b", "...x"])
def test_ordinary_values_pass(value: str) -> None:
    assert check_identity("user", value) == value


def test_prompt_domains_are_reserved() -> None:
    with pytest.raises(BadIdentity, match="reserved"):
        check_mailbox("example.com-prompts", "bob")
    assert check_mailbox("example.com", "bob") == ("example.com", "bob")


def test_greeting_types_are_not_hidden_files() -> None:
    with pytest.raises(BadIdentity, match="start with"):
        check_greeting_type(".vm")


@given(st.text(min_size=1, max_size=40))
def test_whatever_passes_is_a_single_path_component(value: str) -> None:
    try:
        check_identity("user", value)
    except BadIdentity:
        return
    assert "/" not in value
    assert "\0" not in value
    assert value not in (".", "..")
