"""HTTP Range (RFC 9110 section 14) for one byte range, as audio elements ask for it.

Pure: the header text and the body's length in, the slice to send (or a refusal) out.
Several ranges in one request are answered with the whole body, which the RFC allows.
"""

from __future__ import annotations

from dataclasses import dataclass

# Digits a byte position may have: more than any body we serve, few enough to parse.
MAX_DIGITS = 18


class RangeNotSatisfiable(ValueError):
    """The range lies wholly outside the body (answer 416 with ``bytes */length``)."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as Content-Range writes it

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, total: int) -> str:
        return f"bytes {self.start}-{self.end}/{total}"


def _number(text: str) -> int | None:
    # str.isdigit() accepts superscripts and other scripts' digits; wire numbers are ASCII.
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_range(header: str | None, total: int) -> ByteRange | None:
    """The range to send for ``Range: header`` on a body of ``total`` bytes; None means
    send the whole body (no header, a unit other than bytes, several ranges, or a header
    we cannot read, all of which RFC 9110 lets a server ignore)."""
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    if first == "":
        suffix = _number(last)
        if suffix is None:
            return None
        if suffix == 0 or total == 0:
            raise RangeNotSatisfiable(f"suffix of {suffix} bytes of a {total}-byte body")
        return ByteRange(max(total - suffix, 0), total - 1)
    start = _number(first)
    end = _number(last) if last else total - 1
    if start is None or end is None or (last and end < start):
        return None
    if start >= total:
        raise RangeNotSatisfiable(f"start {start} is beyond the {total}-byte body")
    return ByteRange(start, min(end, total - 1))
