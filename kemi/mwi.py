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
    NOT_AUTHENTICATED = "not-authenticated"  # 403: a mailbox's state is private
    NOT_OWN_MAILBOX = "not-own-mailbox"  # 403: subscribers see only their own mailbox


REPLIES: dict[MwiVerdict, tuple[int, str]] = {
    MwiVerdict.BAD_EVENT: (489, "Bad Event"),
    MwiVerdict.NOT_A_WORKER: (403, "Only media workers publish mailbox state"),
    MwiVerdict.NOT_AUTHENTICATED: (403, "Mailbox state needs authentication"),
    MwiVerdict.NOT_OWN_MAILBOX: (403, "Not your mailbox"),
}


def event_package(event_header: str | None) -> str:
    """The package of an Event header value, without parameters (``;id=...``)."""
    return (event_header or "").split(";", 1)[0].strip().lower()


def same_address(user_a: str, domain_a: str, user_b: str, domain_b: str) -> bool:
    """SIP users compare case-sensitively, hosts case-insensitively (RFC 3261 19.1.4)."""
    return user_a == user_b and domain_a.lower() == domain_b.lower()


def publish_verdict(event_header: str | None, *, from_worker: bool) -> MwiVerdict:
    if event_package(event_header) != MWI_EVENT:
        return MwiVerdict.BAD_EVENT
    return MwiVerdict.PUBLISH if from_worker else MwiVerdict.NOT_A_WORKER


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
