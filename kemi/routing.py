"""Routing decisions of the home proxy: which app, whose profile, when voicemail.

Pure functions of request facts; the KEMI script asks, then acts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from kemi.app_param import ANNRECORDER, VOICEBOX, VOICEMAIL
from kemi.settings import Settings

# What a SQL string literal may carry: the values come from SIP URIs, which a caller
# chooses (brackets: an IPv6 reference as the domain). Anything else is refused rather than
# escaped.
_SAFE_SQL_VALUE = re.compile(r"[A-Za-z0-9._~!$&*+,=:@%\[\]\-]{1,128}")


class Target(Enum):
    """Where an initial INVITE to a local user goes."""

    VOICEBOX = VOICEBOX  # the caller's own box, on the access number
    ANNRECORDER = ANNRECORDER  # the caller records greetings
    LOCATION = "location"  # ring the callee; voicemail on failure


@dataclass(frozen=True)
class AppCall:
    """An INVITE to hand to a media worker: the app and whose profile it uses."""

    app: str
    user: str
    domain: str


def access_target(ruri_user: str, settings: Settings) -> Target:
    """The target for a request-URI user at our domain."""
    if ruri_user == settings.voicebox_number:
        return Target.VOICEBOX
    if ruri_user == settings.annrecorder_number:
        return Target.ANNRECORDER
    return Target.LOCATION


def app_for_access(target: Target, caller_user: str, caller_domain: str) -> AppCall:
    """The caller's own mailbox: the profile is always the authenticated caller's."""
    return AppCall(target.value, caller_user, caller_domain)


def app_for_voicemail(callee_user: str, callee_domain: str) -> AppCall:
    return AppCall(VOICEMAIL, callee_user, callee_domain)


def goes_to_voicemail(status: int, settings: Settings, *, timed_out: bool) -> bool:
    """After a failed branch to a phone: leave a message instead?"""
    return timed_out or status in settings.voicemail_statuses


def sql_literal(value: str) -> str:
    """``value`` as a quoted SQL string, for usr_preferences lookups.

    Raises ValueError for anything outside the characters SIP user and host parts use
    (quotes, backslashes, spaces, NUL), so nothing a caller writes becomes SQL.
    """
    if not _SAFE_SQL_VALUE.fullmatch(value):
        raise ValueError(f"refusing {value[:40]!r} in a database lookup")
    return f"'{value}'"


def preferences_query(table: str, user: str, domain: str) -> str:
    """The query for a user's attributes (avpops usr_preferences layout)."""
    return (
        f"SELECT attribute, value FROM {table} "
        f"WHERE username = {sql_literal(user)} AND domain = {sql_literal(domain)}"
    )
