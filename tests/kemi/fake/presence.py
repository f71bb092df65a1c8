"""presence with presence_mwi: the publications (presentity table), the subscriptions
(active_watchers) and the NOTIFYs sent, kept as Kamailio 5.6's presence module keeps
them; the KSR.presence functions that change them."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.kemi.fake.api import _Module
from tests.kemi.fake.sip import Request, _header_param, uri_of, uri_user_host

ACTIVE, TERMINATED = "active", "terminated"  # Subscription-State of a NOTIFY
# pres_refresh_watchers types: 0 re-reads authorisation rules, 1 NOTIFYs the stored
# state again, 2 reads a hard-state file first.
REFRESH_RULES, REFRESH_NOTIFY = 0, 1


@dataclass(frozen=True)
class Publication:
    """A presentity's state as a PUBLISH left it."""

    presentity: str  # sip:user@domain of the PUBLISH's R-URI
    event: str
    etag: str  # presence's SIP-ETag: a new one for every PUBLISH
    body: str
    expires: int


@dataclass
class Subscription:
    """A watcher's subscription: the dialog presence made with the initial SUBSCRIBE."""

    presentity: str  # sip:user@domain of the initial SUBSCRIBE's R-URI
    event: str
    watcher: str  # the From URI
    call_id: str
    from_tag: str
    to_tag: str  # presence's
    expires: int


@dataclass(frozen=True)
class Notify:
    """A NOTIFY presence sent in a subscription."""

    watcher: str
    presentity: str
    event: str
    call_id: str
    state: str  # ACTIVE or TERMINATED
    body: str  # the presentity's last published body; "" when nothing is published


@dataclass
class PresenceState:
    """What presence holds, and what it sent. ``events``: the packages the loaded
    presence_* modules register (presence_mwi: message-summary)."""

    events: frozenset[str] = frozenset({"message-summary"})  # with their parameters
    default_expires: int = 3600  # presence_mwi's, when a request has no Expires
    max_expires: int = 3600  # modparam max_expires (kamailio.cfg: MWI_MAX_EXPIRES)
    publications: list[Publication] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    notifies: list[Notify] = field(default_factory=list)
    _issued: int = 0

    def body(self, presentity: str, event: str) -> str:
        published = [p for p in self.publications if (p.presentity, p.event) == (presentity, event)]
        return published[-1].body if published else ""

    def watchers(self, presentity: str, event: str) -> list[Subscription]:
        return [s for s in self.subscriptions if (s.presentity, s.event) == (presentity, event)]

    def notify(self, subscription: Subscription, state: str = ACTIVE) -> None:
        body = self.body(subscription.presentity, subscription.event)
        self.notifies.append(
            Notify(
                subscription.watcher,
                subscription.presentity,
                subscription.event,
                subscription.call_id,
                state,
                body,
            )
        )

    def notify_watchers(self, presentity: str, event: str) -> None:
        for subscription in self.watchers(presentity, event):
            self.notify(subscription)

    def new_tag(self, prefix: str) -> str:
        self._issued += 1
        return f"{prefix}-{self._issued}"


def _event(event_header: str | None) -> str:
    """An Event value as presence matches it against the registered events: with its
    parameters, which must be the registered ones (presence_mwi registers none, so
    ``message-summary;id=1`` is not its event)."""
    return "".join((event_header or "").split()).lower()


class Presence(_Module, module="presence"):
    """handle_publish and handle_subscribe answer the request themselves (sl's
    freply: statefully once the script created a transaction); they return 1, or -1
    after an error reply."""

    def handle_publish(self) -> int:
        kam, store = self._k, self._k.presence
        request = self._request("PUBLISH", "handle_publish")
        event = _event(request.header("Event"))
        if event not in store.events:
            return self._error(489, "Bad Event")
        expires = self._expires()
        user, host = uri_user_host(kam._state.ruri)
        presentity = f"sip:{user}@{host}"
        body = request.body
        match = request.header("SIP-If-Match")
        if match is None and not body:
            return self._error(400, "Invalid request")
        if match is not None:
            old = next(
                (
                    p
                    for p in store.publications
                    if (p.presentity, p.event, p.etag) == (presentity, event, match.strip())
                ),
                None,
            )
            if old is None:
                return self._error(412, "Conditional request failed")
            store.publications.remove(old)
            body = body or old.body  # a refresh (no body) keeps the state
        if expires > 0:
            etag = store.new_tag("etag")
            store.publications.append(Publication(presentity, event, etag, body, expires))
        kam._reply_with(200, "OK", "presence")
        store.notify_watchers(presentity, event)
        return 1

    def handle_subscribe(self) -> int:
        kam, store = self._k, self._k.presence
        request = self._request("SUBSCRIBE", "handle_subscribe")
        event = _event(request.header("Event"))
        if event not in store.events:
            return self._error(489, "Bad Event")
        expires = self._expires()
        from_value = request.header("From") or ""
        from_tag = _header_param(from_value, "tag") or ""
        to_tag = _header_param(request.header("To") or "", "tag")
        call_id = request.header("Call-ID") or ""
        if to_tag:
            dialog = (call_id, from_tag, to_tag, event)
            found = [
                s
                for s in store.subscriptions
                if (s.call_id, s.from_tag, s.to_tag, s.event) == dialog
            ]
            if not found:
                return self._error(481, "Subscription does not exist")
            subscription = found[0]
        else:
            user, host = uri_user_host(kam._state.ruri)
            subscription = Subscription(
                f"sip:{user}@{host}",
                event,
                uri_of(from_value),
                call_id,
                from_tag,
                store.new_tag("pres"),
                expires,
            )
            store.subscriptions.append(subscription)
        subscription.expires = expires
        kam._reply_with(200, "OK", "presence")
        if expires == 0:
            store.subscriptions.remove(subscription)
            store.notify(subscription, TERMINATED)
        else:
            store.notify(subscription)
        return 1

    def pres_has_subscribers(self, uri: str, event: str) -> int:
        store = self._k.presence
        if event not in store.events:
            return -1  # "event is not registered"
        return 1 if store.watchers(uri, event) else -1

    def pres_refresh_watchers(self, uri: str, event: str, kind: int) -> int:
        store = self._k.presence
        if event not in store.events or kind == REFRESH_RULES:
            return -1  # unknown event; message-summary has no authorisation rules
        if kind != REFRESH_NOTIFY:
            raise NotImplementedError(f"the fake models pres_refresh_watchers type 1, not {kind}")
        store.notify_watchers(uri, event)
        return 0  # presence's KEMI function answers 0 on success

    def _request(self, method: str, function: str) -> Request:
        request = self._k.request
        if request.method != method:
            raise NotImplementedError(f"the fake models {function} for a {method} only")
        return request

    def _expires(self) -> int:
        store = self._k.presence
        value = self._k.request.header("Expires")
        expires = store.default_expires if value is None else int(value)
        return min(expires, store.max_expires)

    def _error(self, status: int, reason: str) -> int:
        self._k._reply_with(status, reason, "presence")
        return -1
