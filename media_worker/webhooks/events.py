"""What a webhook delivery carries: the event body built from a change notice, its
signature and its delivery id. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from media_worker.changes import Notice
from storage import ChangeKind, MessageInfo

EVENT_TYPES: dict[ChangeKind, str] = {
    ChangeKind.NEW: "message.created",
    ChangeKind.READ: "message.read",
    ChangeKind.UNREAD: "message.unread",
    ChangeKind.DELETED: "message.deleted",
    ChangeKind.GREETING: "greeting.updated",
    ChangeKind.GREETING_DELETED: "greeting.deleted",
}
ALL_EVENTS: tuple[str, ...] = tuple(EVENT_TYPES.values())

SIGNATURE_HEADER = "X-Voicemail-Signature"
EVENT_HEADER = "X-Voicemail-Event"
DELIVERY_HEADER = "X-Voicemail-Delivery"
# Delivery ids derive from the event id and the endpoint's name, so that an event queued
# twice for one endpoint (process 0 died between queueing and removing its notice) keeps
# one delivery id and the receiver can tell the duplicate.
_DELIVERY_NAMESPACE = uuid.UUID("6f1c7f4e-1d0b-4b8e-9a57-1f0d2f6a3c21")


def rfc3339(unix: float, *, millis: bool = False) -> str:
    """UTC time as RFC 3339 (``2023-11-14T22:13:20Z``, with milliseconds if asked)."""
    whole = int(unix // 1)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if millis:
        stamp += f".{min(int((unix - whole) * 1000), 999):03d}"
    return stamp + "Z"


def message_json(info: MessageInfo) -> dict[str, object]:
    """A message as the API's message list shows it (less its audio_url)."""
    return {
        "name": info.name,
        "new": info.new,
        "received_at": rfc3339(info.received_at),
        "received_at_unix": info.received_at,
        "sender": info.sender,
        "duration_s": None if info.duration is None else round(info.duration, 3),
        "size": info.size,
    }


def event_body(notice: Notice) -> dict[str, object]:
    """The JSON object POSTed for ``notice``. A message whose details the store did not
    report with the change carries only its name."""
    event = notice.event
    body: dict[str, object] = {
        "id": notice.id,
        "type": EVENT_TYPES[event.kind],
        "occurred_at": rfc3339(event.occurred_at, millis=True),
        "mailbox": {"domain": event.domain, "user": event.user},
    }
    if event.kind.moves_lamp:
        body["message"] = {"name": event.name} if event.info is None else message_json(event.info)
    else:
        body["greeting"] = {"type": event.name}
    return body


def encode(body: dict[str, object]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """The X-Voicemail-Signature value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


def delivery_id(event_id: str, endpoint: str) -> str:
    return uuid.uuid5(_DELIVERY_NAMESPACE, f"{event_id}/{endpoint}").hex


def check_filter(pattern: str) -> None:
    """Refuse an event filter that can match nothing: an exact type, ``message.*``,
    ``greeting.*`` or ``*``."""
    if pattern == "*" or pattern in ALL_EVENTS:
        return
    if pattern.endswith(".*") and any(t.startswith(pattern[:-1]) for t in ALL_EVENTS):
        return
    raise ValueError(f"unknown event {pattern!r} (known: {', '.join(ALL_EVENTS)}, or a.* or *)")


def wanted(filters: tuple[str, ...], event_type: str) -> bool:
    return any(
        f == "*" or f == event_type or (f.endswith(".*") and event_type.startswith(f[:-1]))
        for f in filters
    )
