"""The one parser of numbers on the wire: ASCII digits within bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.sip.errors import RemoteProtocolError
from media_worker.sip.numbers import MAX_DIGITS, is_number, parse_number


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "malformed port ''"),
        ("5\u00b2", "malformed port '5\u00b2'"),  # isdigit() is True, int() raises
        ("\u0663", "malformed port '\u0663'"),  # isdigit() is True, int() gives 3
        ("\uff15", "malformed port '\uff15'"),
        ("+5", "malformed port '+5'"),
        (" 5", "malformed port ' 5'"),
        ("5_000", "malformed port '5_000'"),  # int() takes it
        ("9" * 5000, "malformed port '99999999999999999999'"),  # int() raises past 4,300
        ("65536", "port 65536 is not in 1-65535"),
        ("0", "port 0 is not in 1-65535"),
    ],
)
def test_refusals(text: str, error: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_number(text, "port", 1, 65535)
    assert str(caught.value) == error


def test_the_parsers_own_error_type() -> None:
    class Mine(ValueError):
        pass

    with pytest.raises(Mine, match="malformed x"):
        parse_number("x", "x", 0, 1, Mine)
    assert parse_number("0005060", "port", 1, 65535) == 5060


@given(st.text(max_size=MAX_DIGITS + 2))
def test_fuzz_only_ascii_digits_within_bounds(text: str) -> None:
    try:
        value = parse_number(text, "n", 0, 10**12)
    except RemoteProtocolError:
        assert not (is_number(text) and int(text) <= 10**12)
        return
    assert text.isascii()
    assert text.isdigit()
    assert value == int(text)
