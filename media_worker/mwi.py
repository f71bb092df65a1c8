"""Message-waiting indication (RFC 3842) published with PUBLISH (RFC 3903), sans-IO.

The worker tells Kamailio's presence server the state of a mailbox; phones SUBSCRIBE to
``message-summary`` there and get it in NOTIFYs. This module builds and parses the
``application/simple-message-summary`` body, builds the PUBLISH requests and keeps one
publication per mailbox (its entity tag and when it must be refreshed), and the msgpack
record that keeps a mailbox's publication across restarts. Time is an argument; the
asyncio side is media_worker/mwi_publisher.py.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any

import msgpack

from media_worker.sip.headers import Headers
from media_worker.sip.message import Request, Response
from media_worker.sip.numbers import is_number

EVENT = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
# Refresh this many seconds (or this share of the lifetime, if less) before expiry.
REFRESH_MARGIN = 60.0
REFRESH_SHARE = 0.2
MIN_EXPIRES = 60  # RFC 3903 lets a server ask for at least this much (423 Interval Too Brief)
RECORD_VERSION = 1

_VOICE = re.compile(r"([0-9]+)/([0-9]+)(?:\s*\(([0-9]+)/([0-9]+)\))?")


@dataclass(frozen=True)
class MessageSummary:
    """What a simple-message-summary body says about the voice messages of an account."""

    account: str  # the SIP URI of the mailbox, e.g. sip:bob@example.org
    new: int
    old: int
    new_urgent: int = 0
    old_urgent: int = 0

    def __post_init__(self) -> None:
        for name in ("new", "old", "new_urgent", "old_urgent"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def waiting(self) -> bool:
        return self.new > 0

    def serialize(self) -> bytes:
        lines = [
            f"Messages-Waiting: {'yes' if self.waiting else 'no'}",
            f"Message-Account: {self.account}",
            f"Voice-Message: {self.new}/{self.old} ({self.new_urgent}/{self.old_urgent})",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    @classmethod
    def parse(cls, body: bytes) -> MessageSummary:
        """The voice-message part of a simple-message-summary body (RFC 3842 5.2)."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("message summary is not UTF-8") from None
        fields: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"message summary line without a colon: {line!r}")
            fields.setdefault(name.strip().lower(), value.strip())
        waiting = fields.get("messages-waiting")
        if waiting is None:
            raise ValueError("message summary without Messages-Waiting")
        if waiting.lower() not in ("yes", "no"):
            raise ValueError(f"Messages-Waiting must be yes or no, not {waiting!r}")
        new = old = new_urgent = old_urgent = 0
        voice = fields.get("voice-message")
        if voice is not None:
            match = _VOICE.fullmatch(voice)
            if match is None:
                raise ValueError(f"malformed Voice-Message {voice!r}")
            new, old = int(match[1]), int(match[2])
            new_urgent, old_urgent = int(match[3] or 0), int(match[4] or 0)
        summary = cls(fields.get("message-account", ""), new, old, new_urgent, old_urgent)
        if voice is not None and summary.waiting != (waiting.lower() == "yes"):
            raise ValueError(f"Messages-Waiting {waiting} disagrees with Voice-Message {voice}")
        return summary


def account_uri(user: str, domain: str) -> str:
    return f"sip:{user}@{domain}"


def build_publish(
    summary: MessageSummary,
    *,
    expires: int,
    etag: str | None = None,
    cseq: int = 1,
    call_id: str | None = None,
    from_tag: str | None = None,
) -> Request:
    """A PUBLISH of ``summary`` to its account (the presentity). With ``etag`` it
    modifies (and refreshes) that publication (SIP-If-Match); without, it starts one.
    Core.send_request adds the Via."""
    aor = summary.account
    headers = Headers(
        [
            ("Max-Forwards", "70"),
            ("From", f"<{aor}>;tag={from_tag or secrets.token_hex(6)}"),
            ("To", f"<{aor}>"),
            ("Call-ID", call_id or f"{secrets.token_hex(12)}@voicemail"),
            ("CSeq", f"{cseq} PUBLISH"),
            ("Event", EVENT),
            ("Expires", str(expires)),
        ]
    )
    if etag is not None:
        headers.add("SIP-If-Match", etag)
    headers.add("Content-Type", CONTENT_TYPE)
    return Request("PUBLISH", aor, headers, summary.serialize())


def refresh_delay(expires: float) -> float:
    """Seconds after a successful PUBLISH at which to refresh it."""
    return max(expires - min(REFRESH_MARGIN, expires * REFRESH_SHARE), 1.0)


class Outcome(enum.Enum):
    """What to do after a PUBLISH's answer (see Publication.on_response)."""

    DONE = "done"  # published; refresh at Publication.refresh_at
    RETRY_FRESH = "retry-fresh"  # the server lost our entity: publish again without it
    RETRY_LONGER = "retry-longer"  # 423: publish again with the server's Min-Expires
    FAILED = "failed"  # give up until the next change (logged)


@dataclass
class Publication:
    """One mailbox's publication at the presence server: its entity tag, lifetime and
    the sequence numbers of the PUBLISHes that carry it."""

    account: str
    expires: int
    etag: str | None = None
    refresh_at: float | None = None
    expires_at: float | None = None  # when the server forgets it unless refreshed
    cseq: int = 0
    call_id: str = ""
    from_tag: str = ""

    def __post_init__(self) -> None:
        self.call_id = self.call_id or f"{secrets.token_hex(12)}@voicemail"
        self.from_tag = self.from_tag or secrets.token_hex(6)

    def request(self, new: int, old: int) -> Request:
        """The next PUBLISH of this mailbox's counts (a modification once we hold an
        entity tag: a refresh carries the current counts too, so that an old
        publication of another worker never outlives a newer state)."""
        self.cseq += 1
        summary = MessageSummary(self.account, max(new, 0), max(old, 0))
        return build_publish(
            summary,
            expires=self.expires,
            etag=self.etag,
            cseq=self.cseq,
            call_id=self.call_id,
            from_tag=self.from_tag,
        )

    def on_response(self, response: Response | None, now: float) -> Outcome:
        """Take the answer to the last request (None: it timed out)."""
        if response is None:
            self._forget()
            return Outcome.FAILED
        if 200 <= response.status < 300:
            etag = response.headers.get("SIP-ETag")
            if not etag:
                self._forget()
                return Outcome.FAILED
            self.etag = etag.strip()
            granted = _int(response.headers.get("Expires"), self.expires)
            self.refresh_at = now + refresh_delay(granted)
            self.expires_at = now + granted
            return Outcome.DONE
        self._forget()
        if response.status == 412:  # Conditional Request Failed: our etag is unknown
            return Outcome.RETRY_FRESH
        if response.status == 423:
            minimum = _int(response.headers.get("Min-Expires"), 0)
            if minimum > self.expires:
                self.expires = minimum
                return Outcome.RETRY_LONGER
        return Outcome.FAILED

    def _forget(self) -> None:
        self.etag, self.refresh_at, self.expires_at = None, None, None

    def saved(self, wall_offset: float) -> Publication:
        """A copy to keep on disk, its times in unix seconds; ``wall_offset`` is wall-clock
        time minus the time base of ``now`` (the event loop's clock does not survive a
        restart)."""
        return replace(
            self,
            refresh_at=None if self.refresh_at is None else self.refresh_at + wall_offset,
            expires_at=None if self.expires_at is None else self.expires_at + wall_offset,
        )

    @classmethod
    def restore(cls, saved: Publication, *, now: float, wall_now: float) -> Publication:
        """The publication back from disk (``saved()``'s copy). One the server still
        holds keeps its entity tag and is refreshed when due (at once if that time passed
        while no worker ran); one that expired meanwhile, or had failed, has none: publish
        it from scratch."""
        publication = cls(
            saved.account, saved.expires, cseq=saved.cseq,
            call_id=saved.call_id, from_tag=saved.from_tag,
        )  # fmt: skip
        if saved.etag is not None and saved.expires_at is not None and saved.expires_at > wall_now:
            offset = now - wall_now
            publication.etag = saved.etag
            publication.expires_at = saved.expires_at + offset
            # No refresh time: stopped while one was in flight. Either way, a refresh
            # missed while no worker ran is due now.
            refresh_at = saved.refresh_at if saved.refresh_at is not None else wall_now
            publication.refresh_at = max(min(refresh_at, saved.expires_at), wall_now) + offset
        return publication


@dataclass(frozen=True)
class MailboxRecord:
    """One mailbox's entry in a worker's durable publication table: the SIP address
    learnt for it from calls (uid/did mailboxes) and its publication, if any."""

    domain: str
    user: str
    address: tuple[str, str] | None = None  # (user, domain) that phones subscribe to
    publication: Publication | None = None  # as saved(): unix times

    def serialize(self) -> bytes:
        saved = self.publication
        return bytes(
            msgpack.packb(
                {
                    "v": RECORD_VERSION,
                    "domain": self.domain,
                    "user": self.user,
                    "address": None if self.address is None else list(self.address),
                    "publication": None if saved is None else {
                        "account": saved.account,
                        "expires": saved.expires,
                        "etag": saved.etag,
                        "refresh_at": saved.refresh_at,
                        "expires_at": saved.expires_at,
                        "cseq": saved.cseq,
                        "call_id": saved.call_id,
                        "from_tag": saved.from_tag,
                    },
                }
            )
        )  # fmt: skip

    @classmethod
    def parse(cls, data: bytes) -> MailboxRecord:
        try:
            fields: Any = msgpack.unpackb(data)
        except ValueError as exc:
            raise ValueError(f"MWI record is not msgpack: {exc}") from None
        if not isinstance(fields, dict) or fields.get("v") != RECORD_VERSION:
            raise ValueError("not a version 1 MWI record")
        address = _field(fields, "address", list, optional=True)
        if address is not None and (
            len(address) != 2 or not all(isinstance(part, str) for part in address)
        ):
            raise ValueError(f"MWI record address is not [user, domain]: {address!r}")
        saved = _field(fields, "publication", dict, optional=True)
        return cls(
            domain=_field(fields, "domain", str),
            user=_field(fields, "user", str),
            address=None if address is None else (address[0], address[1]),
            publication=None if saved is None else Publication(
                account=_field(saved, "account", str),
                expires=_field(saved, "expires", int),
                etag=_field(saved, "etag", str, optional=True),
                refresh_at=_time(saved, "refresh_at"),
                expires_at=_time(saved, "expires_at"),
                cseq=_field(saved, "cseq", int),
                call_id=_field(saved, "call_id", str),
                from_tag=_field(saved, "from_tag", str),
            ),
        )  # fmt: skip


def _field(
    fields: dict[Any, Any],
    name: str,
    kind: type[Any] | tuple[type[Any], ...],
    optional: bool = False,
) -> Any:
    if name not in fields:
        raise ValueError(f"MWI record without {name}")
    value = fields[name]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"MWI record {name} has the wrong type: {value!r}")
    return value


def _time(fields: dict[Any, Any], name: str) -> float | None:
    value = _field(fields, name, (int, float), optional=True)
    return None if value is None else float(value)


def _int(value: str | None, default: int) -> int:
    """An Expires-like header: ASCII digits (int() would take '\u0663'), else ``default``."""
    text = (value or "").strip()
    return int(text) if is_number(text) and int(text) <= 2**32 - 1 else default
