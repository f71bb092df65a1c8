"""Decisions of the home proxy about message-waiting indication (RFC 3842), pure.

Phones SUBSCRIBE to the ``message-summary`` event of their own address; the media
workers PUBLISH each mailbox's state; Kamailio's presence module (with presence_mwi)
keeps the state and NOTIFYs the subscribers. Standard library only (runs inside
Kamailio).
"""

from __future__ import annotations

import enum

MWI_EVENT = "message-summary"
# pres_refresh_watchers type: NOTIFY the watchers the stored state again (0 would be an
# authorisation-rules refresh, which message-summary does not have).
REFRESH_NOTIFY = 1


class MwiVerdict(enum.Enum):
    PUBLISH = "publish"  # hand to presence: handle_publish
    SUBSCRIBE = "subscribe"  # hand to presence: handle_subscribe
    BAD_EVENT = "bad-event"  # 489
    NOT_A_WORKER = "not-a-worker"  # 403: only media workers publish mailbox state
    NOT_SIGNED = "not-signed"  # 403: with VM_SECRET, only signed publications count
    NOT_AUTHENTICATED = "not-authenticated"  # 403: a mailbox's state is private
    NOT_OWN_MAILBOX = "not-own-mailbox"  # 403: subscribers see only their own mailbox


REPLIES: dict[MwiVerdict, tuple[int, str]] = {
    MwiVerdict.BAD_EVENT: (489, "Bad Event"),
    MwiVerdict.NOT_A_WORKER: (403, "Only media workers publish mailbox state"),
    MwiVerdict.NOT_SIGNED: (403, "Mailbox state needs a valid signature"),
    MwiVerdict.NOT_AUTHENTICATED: (403, "Mailbox state needs authentication"),
    MwiVerdict.NOT_OWN_MAILBOX: (403, "Not your mailbox"),
}


def event_package(event_header: str | None) -> str:
    """The package of an Event header value, without parameters (``;id=...``)."""
    return (event_header or "").split(";", 1)[0].strip().lower()


def same_address(user_a: str, domain_a: str, user_b: str, domain_b: str) -> bool:
    """SIP users compare case-sensitively, hosts case-insensitively (RFC 3261 19.1.4),
    and without a trailing dot."""
    return user_a == user_b and domain_a.lower().rstrip(".") == domain_b.lower().rstrip(".")


def publish_verdict(
    event_header: str | None,
    *,
    from_worker: bool,
    signing: bool = False,
    signature_error: str | None = None,
) -> MwiVerdict:
    """A PUBLISH to this proxy. ``signing``: VM_SECRET is set, and then only a valid
    signature (``signature_error`` None) counts, not the source address, which UDP lets
    anyone claim; without a secret, the source must be a worker's."""
    if event_package(event_header) != MWI_EVENT:
        return MwiVerdict.BAD_EVENT
    if signing:
        return MwiVerdict.PUBLISH if signature_error is None else MwiVerdict.NOT_SIGNED
    return MwiVerdict.PUBLISH if from_worker else MwiVerdict.NOT_A_WORKER


def publication_fields(call_id: str, request_uri: str, body: str) -> tuple[str, str, str]:
    """What a worker's PUBLISH signature covers (kemi.signing), in order."""
    return (call_id.strip(), request_uri.strip(), body)


def relayed_notify_refused(method: str, event_header: str | None) -> bool:
    """A message-summary NOTIFY comes only from this proxy's own presence server, which
    sends it without routing it: one that arrives to be relayed is forged."""
    return method == "NOTIFY" and event_package(event_header) == MWI_EVENT


def subscribe_verdict(
    event_header: str | None,
    *,
    authenticated: bool,
    subscriber: tuple[str, str],
    mailbox: tuple[str, str],
) -> MwiVerdict:
    """An initial SUBSCRIBE: ``subscriber`` is the authenticated From (user, domain),
    ``mailbox`` the R-URI's."""
    if event_package(event_header) != MWI_EVENT:
        return MwiVerdict.BAD_EVENT
    if not authenticated:
        return MwiVerdict.NOT_AUTHENTICATED
    if not same_address(*subscriber, *mailbox):
        return MwiVerdict.NOT_OWN_MAILBOX
    return MwiVerdict.SUBSCRIBE
