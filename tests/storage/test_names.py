"""Message names: SEMS raw names decode, our names are safe and reversible."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.names import (
    MAX_SENDER_CHARS,
    SAFE_CHARS,
    encode_sender,
    message_name,
    split_message_name,
)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        (
            '1700000000+"Bob" <sip:bob@example.com>',
            (1700000000, '"Bob" <sip:bob@example.com>'),
        ),
        ("1700000000+sip:alice@example.com", (1700000000, "sip:alice@example.com")),
        ("1700000000+", (1700000000, "")),
        ("1700000000+a+b", (1700000000, "a+b")),
        ("1700000000-3+alice", (1700000000, "alice")),
        ("1700000000+100% sure", (1700000000, "100% sure")),
        ("1700000000+%22Bob%22%20%3Csip:b@x%3E", (1700000000, '"Bob" <sip:b@x>')),
    ],
)
def test_parses_names(name: str, parsed: tuple[int, str]) -> None:
    assert split_message_name(name) == parsed


@pytest.mark.parametrize("name", ["greeting", "+alice", "17000x+alice", "1700000000"])
def test_names_without_a_timestamp_are_not_messages_names(name: str) -> None:
    assert split_message_name(name) is None


def test_collision_counter() -> None:
    assert message_name(1700000000, "alice") == "1700000000+alice"
    assert message_name(1700000000, "alice", 2) == "1700000000-2+alice"
    with pytest.raises(ValueError, match="must not be negative"):
        message_name(-1, "alice")


def test_long_senders_are_cut_without_splitting_escapes() -> None:
    encoded = encode_sender("é" * 200)
    assert len(encoded) <= MAX_SENDER_CHARS
    assert split_message_name(f"1+{encoded}") == (1, "é" * (len(encoded) // 6))


@given(st.text(max_size=30), st.integers(min_value=0, max_value=2**40), st.integers(0, 999))
def test_our_names_round_trip_and_are_safe(sender: str, ts: int, seq: int) -> None:
    name = message_name(ts, sender, seq)
    parsed = split_message_name(name)
    assert parsed is not None
    received_at, parsed_sender = parsed
    assert received_at == ts
    expected = sender.encode("utf-8", "replace").decode()
    if len(quote(sender, safe=SAFE_CHARS, errors="replace")) <= MAX_SENDER_CHARS:
        assert parsed_sender == expected
    else:  # cut to fit a file name: whole characters, a prefix of the sender
        assert expected.startswith(parsed_sender)
        assert len(encode_sender(sender)) <= MAX_SENDER_CHARS
    assert not set(name) & set('/\\\0"<> \n\r\t')
    assert len(f"{name}.wav".encode()) <= 255
