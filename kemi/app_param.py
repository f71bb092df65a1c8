"""Build the P-App-Name / P-App-Param pair the media worker reads (SEMS contract).

Pure: the KEMI script passes in the user's preferences as loaded from usr_preferences.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

APP_NAME_HEADER = "P-App-Name"
APP_PARAM_HEADER = "P-App-Param"
# Every header a client could use to steer the worker; removed from every request.
CLIENT_HEADER_PATTERN = "^[Pp]-[Aa][Pp][Pp]-"  # any letter case

VOICEMAIL, VOICEBOX, ANNRECORDER = "voicemail", "voicebox", "annrecorder"
AppName = Literal["voicemail", "voicebox", "annrecorder"]  # P-App-Name (the worker's too)
APPS: tuple[AppName, ...] = ("voicemail", "voicebox", "annrecorder")
Mode = Literal["voicemail", "box", "both", "ann"]  # P-App-Param mod (the worker's too)
MODES: tuple[Mode, ...] = ("voicemail", "box", "both", "ann")

# usr_preferences attribute -> P-App-Param key (SEMS howto names): the preferences the
# proxy loads, and the ones `voicemail user` provisions (media_worker.provisioning).
PREFERENCE_KEYS = {
    "voicemail": "mod",
    "email": "eml",
    "lang": "lng",
    "uid": "uid",
    "did": "did",
    "vm_greeting_type": "typ",
}

# The quoting rule, the same as kamailio-cfg/native/voicemail.cfg route[VMPARAMITEM]
# (tests/kamailio/test_parity.py holds them to it): a value made only of A-Z a-z 0-9 and
# @ . _ + : - < > ! ~ * ( ) % & $ , / ? [ ] goes as it is; any other is wrapped in double
# quotes, or in single quotes when it holds a double one; a value with both quote
# characters or a control character (0-31, 127) is refused.
_PLAIN = re.compile(r"[A-Za-z0-9@._+:\-<>!~*()%&$,/?\[\]]*")


class ParamError(ValueError):
    """A value cannot be put in the header (names the key)."""


@dataclass(frozen=True)
class Profile:
    """What the proxy knows of a mailbox owner: SIP identity plus usr_preferences."""

    user: str
    domain: str
    preferences: Mapping[str, str]

    def get(self, attribute: str) -> str | None:
        value = self.preferences.get(attribute)
        return value if value else None


def preferences_from_rows(rows: Iterable[tuple[str, str]]) -> dict[str, str]:
    """usr_preferences (attribute, value) rows to a dict of the attributes we use.

    Attributes are matched case-insensitively; for a repeated attribute the first row
    wins (the table has no uniqueness constraint).
    """
    wanted: dict[str, str] = {}
    for attribute, value in rows:
        name = attribute.strip().lower()
        if name in PREFERENCE_KEYS and name not in wanted:
            wanted[name] = value.strip()
    return wanted


def quote_value(key: str, value: str) -> str:
    """A value as it may stand in ``key=value``: plain, or wholly in quotes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ParamError(f"{key}: control character in value")
    if _PLAIN.fullmatch(value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ParamError(f"{key}: value holds both quote characters")


def voicemail_mode(profile: Profile) -> str | None:
    """The mode to send, or None for the worker's default.

    A mode that emails needs an address: without one the message goes to the box
    rather than being refused by the worker (a caller's message is never turned away
    over a missing profile field).
    """
    mode = profile.get("voicemail")
    if mode is not None:
        mode = mode.lower()
        if mode not in MODES:
            raise ParamError(f"mod: {mode!r} is not one of {', '.join(MODES)}")
    if profile.get("email") is None and mode in (None, "voicemail", "both"):
        return "box"
    return mode


def build_app_param(
    app: str, profile: Profile, *, sender: str | None = None, default_typ: str = "vm"
) -> str:
    """The P-App-Param value for ``app`` on behalf of ``profile``.

    Keys follow the SEMS howto: usr, dom, uid, did, snd, eml, mod, lng, typ. Absent
    preferences are left out, so the worker's own defaults apply.
    """
    items: list[tuple[str, str | None]] = [
        ("usr", profile.user),
        ("dom", profile.domain),
        ("uid", profile.get("uid")),
        ("did", profile.get("did")),
    ]
    if app == VOICEMAIL:
        items += [
            ("snd", sender),
            ("eml", profile.get("email")),
            ("mod", voicemail_mode(profile)),
        ]
    items.append(("lng", profile.get("lang")))
    if app in (VOICEMAIL, ANNRECORDER):
        items.append(("typ", profile.get("vm_greeting_type") or default_typ))
    return ";".join(f"{key}={quote_value(key, value)}" for key, value in items if value)
