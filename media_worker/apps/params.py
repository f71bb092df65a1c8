"""The SEMS proxy contract: P-App-Name selects the app, P-App-Param carries the profile.

Parsed and validated before any session exists; a problem becomes a Rejection whose reason
phrase names it (400 bad parameters, 404 unknown application).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kemi.app_param import APPS, MODES, AppName, Mode
from media_worker.apps.errors import AppParamError
from media_worker.config import AppsConfig
from media_worker.sip.actions import Rejection
from media_worker.sip.address import NameAddr, SipUri
from media_worker.sip.errors import RemoteProtocolError
from media_worker.sip.message import Request
from storage.errors import BadIdentity
from storage.identity import check_greeting_type, check_mailbox

# Short and long spellings of each key (SEMS), matched without regard to case.
KEYS = {
    "usr": "user",
    "user": "user",
    "dom": "domain",
    "domain": "domain",
    "uid": "uid",
    "userid": "uid",
    "did": "did",
    "domainid": "did",
    "snd": "sender",
    "sender": "sender",
    "eml": "email",
    "email-address": "email",
    "mod": "mode",
    "mode": "mode",
    "lng": "language",
    "language": "language",
    "typ": "typ",
    "type": "typ",
    "pin": "pin",
}
DEFAULT_GREETING_TYPE = "vm"
# A language tag as P-App-Param lng carries it (en, de, pt_BR, zh-Hant).
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


@dataclass(frozen=True)
class AppRequest:
    """What a call asks of an app, validated."""

    app: AppName
    user: str  # the mailbox user: uid when given, else usr
    domain: str  # the mailbox domain: did when given, else dom
    sender: str
    mode: Mode
    email: str | None
    language: str | None
    typ: str
    pin: str | None
    uid: str | None = None
    did: str | None = None
    usr: str | None = None  # usr and dom as the proxy sent them (template variables)
    dom: str | None = None
    extras: dict[str, str] = field(default_factory=dict)  # unknown keys, for templates


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_app_param(value: str) -> tuple[dict[str, str], dict[str, str]]:
    """``key=value;...`` into (known keys by canonical name, other keys as given).

    Keys are case-insensitive, a value wholly in quotes is unquoted, a trailing ``;`` is
    fine; an item without ``=`` or a key given twice is an error.
    """
    known: dict[str, str] = {}
    extras: dict[str, str] = {}
    for item in _split(value):
        if not item.strip():
            continue
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise AppParamError(f"P-App-Param: malformed item {item.strip()[:40]!r}")
        canonical = KEYS.get(key.lower())
        target, name = (known, canonical) if canonical else (extras, key.lower())
        if name in target:
            raise AppParamError(f"P-App-Param: {key!r} given twice")
        target[name] = _unquote(raw)
    return known, extras


def _split(value: str) -> list[str]:
    """Split at ``;`` outside quotes."""
    items: list[str] = []
    current: list[str] = []
    quote = ""
    for char in value:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == ";":
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items


def _select(invite: Request, apps: AppsConfig) -> tuple[AppName, str | None] | Rejection:
    """The app, and the mailbox user a mapping rule's ``(?P<user>...)`` group names."""
    name = invite.headers.get("P-App-Name")
    if name is not None:
        name = _unquote(name).lower()
        if name in APPS:
            return name, None
        return Rejection(404, f"Unknown application '{name[:40]}'")
    try:
        user = SipUri.parse(invite.uri).user or ""
    except RemoteProtocolError:
        user = ""
    for rule in apps.mapping:  # an operator's rule on the R-URI user: the first match wins
        match = re.fullmatch(rule.match, user)
        if match:
            return rule.app, match.groupdict().get("user")
    if apps.simple_mode is not None:  # every call without P-App-Name goes to this app
        return apps.simple_mode, None
    return Rejection(404, "No application selected (P-App-Name missing)")


def app_request(invite: Request, apps: AppsConfig) -> AppRequest | Rejection:
    """The validated profile of this call, or the refusal to answer with."""
    selected = _select(invite, apps)
    if isinstance(selected, Rejection):
        return selected
    app, mapped_user = selected
    try:
        known, extras = parse_app_param(invite.headers.get("P-App-Param") or "")
        if mapped_user and not (known.get("uid") or known.get("user")):
            # An operator's mapping rule (e.g. *98bob) names the mailbox: user and host.
            known["user"] = mapped_user
            known.setdefault("domain", SipUri.parse(invite.uri).host)
        return _build(app, known, extras, invite, apps)
    except (AppParamError, RemoteProtocolError) as exc:  # the latter: an R-URI that fails
        return Rejection(exc.status, str(exc))
    except BadIdentity as exc:
        return Rejection(400, f"Bad {exc.kind}: {exc.reason}")


def _build(
    app: AppName,
    known: dict[str, str],
    extras: dict[str, str],
    invite: Request,
    apps: AppsConfig,
) -> AppRequest:
    usr, dom = known.get("user") or None, known.get("domain") or None
    uid, did = known.get("uid") or None, known.get("did") or None
    user, domain = uid or usr, did or dom
    if app == "voicemail":  # the R-URI names the mailbox when the proxy did not
        uri = SipUri.parse(invite.uri)
        user = user or uri.user
        domain = domain or uri.host
    if not user:
        raise AppParamError("P-App-Param: no user (usr or uid)")
    if not domain:
        raise AppParamError("P-App-Param: no domain (dom or did)")
    domain, user = check_mailbox(domain, user)
    mode = (known.get("mode") or apps.default_mode).lower()
    if mode not in MODES:
        raise AppParamError(f"P-App-Param: unknown mode '{mode[:20]}'")
    email = known.get("email") or None
    if app == "voicemail" and mode in ("voicemail", "both") and (not email or "@" not in email):
        raise AppParamError(f"P-App-Param: mode {mode} needs an email address (eml)")
    language = known.get("language") or None
    if language is not None and not LANGUAGE_TAG.fullmatch(language):
        raise AppParamError(f"P-App-Param: bad language '{language[:20]}'")
    typ = check_greeting_type(known.get("typ") or DEFAULT_GREETING_TYPE)
    sender = known.get("sender") or _from_without_tag(invite)
    return AppRequest(
        app=app,
        user=user,
        domain=domain,
        sender=sender,
        mode=mode,
        email=email,
        language=language,
        typ=typ,
        pin=known.get("pin") or None,
        uid=uid,
        did=did,
        usr=usr,
        dom=dom,
        extras=extras,
    )


def _from_without_tag(invite: Request) -> str:
    try:
        sender = NameAddr.parse(invite.headers.get("From") or "")
    except RemoteProtocolError:
        return invite.headers.get("From") or ""
    return str(NameAddr(sender.uri, sender.display))
