"""Numbers on the wire: ASCII ``[0-9]+`` within bounds, one helper for every parser.

``str.isdigit()`` accepts ``²`` (and ``int()`` then raises) and ``int()`` accepts ``٣``;
neither belongs in a SIP header, an SDP line or a P-App-Param value.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from media_worker.sip.errors import RemoteProtocolError

_DIGITS = re.compile(r"[0-9]+")
# Leading zeros are legal; more digits than this is no number a peer means.
MAX_DIGITS = 20


def is_number(text: str) -> bool:
    """Whether ``text`` is ASCII digits only (and not too many of them)."""
    return len(text) <= MAX_DIGITS and _DIGITS.fullmatch(text) is not None


def parse_number(
    text: str,
    what: str,
    low: int,
    high: int,
    error: Callable[[str], Exception] = RemoteProtocolError,
) -> int:
    """``text`` as an integer in ``low..high``; anything else raises ``error(message)``."""
    if not is_number(text):
        raise error(f"malformed {what} {text[:20]!r}")
    value = int(text)
    if not low <= value <= high:
        raise error(f"{what} {value} is not in {low}-{high}")
    return value
