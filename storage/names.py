"""Message names: ``<ts>+<sender>`` as SEMS writes them, and the safe form we write.

SEMS names a message ``<unix ts>+<sender>`` with the sender verbatim, so a spool holds names
like ``1700000000+"Bob" <sip:bob@example.com>``. We write the sender percent-encoded (UTF-8)
so the name is a safe file name, and ``<ts>-<n>+<sender>`` when two messages would share a
name. Decoding accepts both: a sender made only of safe characters and ``%XX`` escapes is
percent-decoded; anything else is a raw SEMS sender and is taken literally.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from urllib.parse import quote, unquote

SAFE_CHARS = string.ascii_letters + string.digits + "@._+=:,-~"
# Leave room for the timestamp, a collision counter and the ".wav" a file system adds.
MAX_SENDER_CHARS = 200

_NAME_RE = re.compile(r"(?P<ts>[0-9]{1,12})(?:-(?P<seq>[0-9]{1,6}))?\+(?P<sender>.*)", re.DOTALL)
_ENCODED_RE = re.compile(r"(?:[A-Za-z0-9@._+=:,~-]|%[0-9A-Fa-f]{2})*")


@dataclass(frozen=True, slots=True)
class ParsedName:
    received_at: int
    sender: str


def encode_sender(sender: str) -> str:
    """Percent-encode ``sender`` into a safe file name component of bounded length."""
    encoded = quote(sender, safe=SAFE_CHARS, errors="replace")
    if len(encoded) <= MAX_SENDER_CHARS:
        return encoded
    cut = encoded[:MAX_SENDER_CHARS]
    # Never split a %XX escape.
    tail = cut.rfind("%", len(cut) - 2)
    return cut[:tail] if tail != -1 else cut


def message_name(received_at: int, sender: str, seq: int = 0) -> str:
    """The name we give a new message; ``seq`` > 0 disambiguates a name already taken."""
    if received_at < 0:
        raise ValueError(f"received_at must not be negative, got {received_at}")
    stamp = f"{received_at}-{seq}" if seq else str(received_at)
    return f"{stamp}+{encode_sender(sender)}"


def parse_message_name(name: str) -> ParsedName | None:
    """Split a message name into time and sender; None if it is not a ``<ts>+...`` name."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return None
    raw = match["sender"]
    sender = unquote(raw, errors="replace") if _ENCODED_RE.fullmatch(raw) else raw
    return ParsedName(int(match["ts"]), sender)
