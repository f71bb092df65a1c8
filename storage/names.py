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
from urllib.parse import quote, unquote

SAFE_CHARS = string.ascii_letters + string.digits + "@._+=:,-~"
# Leave room for the timestamp, a collision counter and the ".wav" a file system adds.
MAX_SENDER_CHARS = 200

# A sender as we write it holds only safe characters and well-formed %XX escapes.
_NOT_ENCODED = re.compile(r"[^A-Za-z0-9@._+=:,~%-]|%(?![0-9A-Fa-f]{2})")


def encode_sender(sender: str) -> str:
    """Percent-encode ``sender`` into a safe file name component of bounded length."""
    encoded = quote(sender, safe=SAFE_CHARS, errors="replace")
    if len(encoded) <= MAX_SENDER_CHARS:
        return encoded
    # Cut whole characters (never a %XX escape, nor one of a character's UTF-8 bytes), so
    # the name decodes to a prefix of the sender.
    pieces, size = [], 0
    for char in sender:
        piece = quote(char, safe=SAFE_CHARS, errors="replace")
        if size + len(piece) > MAX_SENDER_CHARS:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)


def message_name(received_at: int, sender: str, seq: int = 0) -> str:
    """The name we give a new message; ``seq`` > 0 disambiguates a name already taken."""
    if received_at < 0:
        raise ValueError(f"received_at must not be negative, got {received_at}")
    stamp = f"{received_at}-{seq}" if seq else str(received_at)
    return f"{stamp}+{encode_sender(sender)}"


def _is_number(text: str, max_digits: int) -> bool:
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def split_message_name(name: str) -> tuple[int, str] | None:
    """(received_at, sender) of a message name, or None if it is not ``<ts>+...``.

    Plain string operations rather than one regex: this runs once per listed message.
    """
    stamp, plus, sender = name.partition("+")
    if not plus:
        return None
    ts, dash, seq = stamp.partition("-")
    if not _is_number(ts, 19) or (dash and not _is_number(seq, 6)):
        return None
    if "%" in sender and _NOT_ENCODED.search(sender) is None:
        sender = unquote(sender, errors="replace")
    return int(ts), sender
