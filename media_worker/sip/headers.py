"""SIP header fields: case-insensitive names, compact forms, comma-separated values."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# RFC 3261 7.3.3 and later RFCs' compact forms.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authorization",
        "Call-Info",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "Max-Forwards",
        "Min-Expires",
        "Min-SE",
        "MIME-Version",
        "Organization",
        "P-Asserted-Identity",
        "P-App-Name",
        "P-App-Param",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Subscription-State",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
        "SIP-ETag",
        "SIP-If-Match",
    )
}
# Headers whose value is a comma-separated list (RFC 3261 7.3.1); the others may hold
# commas inside a single value (dates, auth parameters, quoted strings).
MULTI_VALUE = frozenset(
    name.lower()
    for name in (
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "P-Asserted-Identity",
    )
)


def canonical_name(name: str) -> str:
    """Expand compact forms and give well-known headers their usual spelling."""
    lowered = name.lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    return _CANONICAL.get(lowered, name)


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets."""
    parts: list[str] = []
    start = 0
    depth = 0
    quoted = False
    escaped = False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [part for part in parts if part]


class Headers:
    """Header fields in wire order. Lookups ignore case and accept compact names."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = [
            (canonical_name(name), value) for name, value in fields
        ]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._fields] == [
            (n.lower(), v) for n, v in other._fields
        ]

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def copy(self) -> Headers:
        return Headers(self._fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's value (for a list header, the whole first line)."""
        key = canonical_name(name).lower()
        for field, value in self._fields:
            if field.lower() == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value, in order; list headers are split at their commas."""
        key = canonical_name(name).lower()
        values: list[str] = []
        for field, value in self._fields:
            if field.lower() == key:
                if key in MULTI_VALUE:
                    values.extend(split_commas(value))
                else:
                    values.append(value)
        return values

    def add(self, name: str, value: str) -> None:
        self._fields.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        self._fields.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one, where the first one was."""
        canonical = canonical_name(name)
        key = canonical.lower()
        for i, (field, _) in enumerate(self._fields):
            if field.lower() == key:
                self._fields[i] = (canonical, value)
                self._fields[i + 1 :] = [f for f in self._fields[i + 1 :] if f[0].lower() != key]
                return
        self._fields.append((canonical, value))

    def remove(self, name: str) -> int:
        """Drop every field of that name; returns how many there were."""
        key = canonical_name(name).lower()
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0].lower() != key]
        return before - len(self._fields)
