"""The proxy<->worker signature: one construction, checked against an independent
computation, and every way a signature can be refused."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi import signing

SECRET = "lab-secret-0123456789"
FIELDS = ("abc@host", "voicemail", "usr=bob;dom=lab.example;mod=both")


def test_keyed_hash_is_sha256_of_key_and_inner_hex() -> None:
    text = "1700000000|abc@host|voicemail|usr=bob"
    inner = hashlib.sha256(f"{SECRET}:{text}".encode()).hexdigest()
    expected = hashlib.sha256(f"{SECRET}:{inner}".encode()).hexdigest()
    assert signing.keyed_hash(SECRET, text) == expected


def test_sign_then_verify() -> None:
    value = signing.sign(SECRET, 1700000000, FIELDS)
    assert value.startswith("t=1700000000; sig=")
    assert signing.verify(SECRET, value, FIELDS, now=1700000010).timestamp == 1700000000


@pytest.mark.parametrize(
    ("value", "fields", "now", "reason"),
    [
        (None, FIELDS, 1700000000, "unsigned request"),
        ("t=1700000000", FIELDS, 1700000000, "malformed signature"),
        ("t=1700000000; sig=" + "0" * 64, FIELDS, 1700000000, "bad signature"),
        (signing.sign(SECRET, 1700000000, FIELDS), FIELDS, 1700000031, "stale signature"),
        (signing.sign(SECRET, 1700000000, FIELDS), FIELDS, 1699999969, "stale signature"),
        (
            signing.sign(SECRET, 1700000000, FIELDS),
            (*FIELDS[:2], "usr=carol;dom=lab.example"),
            1700000000,
            "bad signature",
        ),
        (
            signing.sign("another-secret-0123", 1700000000, FIELDS),
            FIELDS,
            1700000000,
            "bad signature",
        ),
        ("t=1700000000; sig=" + "0" * 64, ("a|b", "x", "y"), 1700000000, "unsignable field"),
        ("t=١٧٠٠٠٠٠٠٠٠; sig=" + "0" * 64, FIELDS, 1700000000, "malformed signature"),
    ],
)
def test_refusals(value: str | None, fields: tuple[str, ...], now: int, reason: str) -> None:
    with pytest.raises(signing.SignatureError, match=f"^{reason}$"):
        signing.verify(SECRET, value, fields, now=now)


def test_fields_cannot_be_shifted_across_the_separator() -> None:
    value = signing.sign(SECRET, 1700000000, ("id", "voicemail", "a|b"))
    with pytest.raises(signing.SignatureError):
        signing.verify(SECRET, value, ("id", "voicemail|a", "b"), now=1700000000)


@pytest.mark.parametrize(
    "secret", ["short", "with space 0123456789", 'quote"0123456789abc', "é" * 20]
)
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="signing secret"):
        signing.check_secret(secret)


@given(st.text())
def test_parse_raises_only_its_own_error(value: str) -> None:
    with contextlib.suppress(signing.SignatureError):
        signing.parse(value)
