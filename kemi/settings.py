"""The proxy's voicemail settings, read once from kamailio.cfg defines.

Operators set them with ``#!define`` in kamailio.cfg or kamailio-local.cfg; the KEMI
script reads each through ``$def(NAME)``, which gives the raw text of the define (a
string define keeps its quotes). Pure: the reader is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kemi.signing import check_secret

_INTEGER = re.compile(r"-?[0-9]{1,9}")

# SIP statuses after which an INVITE goes to voicemail (SEMS howto: busy, not found,
# temporarily unavailable, timeout).
DEFAULT_VOICEMAIL_STATUSES = (404, 408, 480, 486)


class SettingsError(ValueError):
    """A define holds a value the proxy cannot use; names the define."""


@dataclass(frozen=True)
class Settings:
    voicebox_number: str = "1000"
    annrecorder_number: str = "1001"
    no_answer_timeout: int = 20  # seconds a phone rings before voicemail answers
    voicemail_statuses: tuple[int, ...] = DEFAULT_VOICEMAIL_STATUSES
    worker_set: int = 1  # dispatcher set of media workers
    # ds_select_dst algorithm: 4 = round robin; failover goes to the next in the set.
    worker_algorithm: int = 4
    rtpengine: bool = True
    greeting_type: str = "vm"  # the typ sent when the user has no vm_greeting_type
    max_body: int = 8192  # bytes of an INVITE body
    max_media: int = 4  # m= lines of an INVITE's SDP
    max_calls_per_source: int = 10  # unauthenticated calls in progress per source address
    ban_time: int = 300  # seconds (kamailio.cfg gives it to htable as the tables' expiry)
    auth_fail_limit: int = 10  # failures per source or user within ban_time: a ban
    worker_first_response_ms: int = 2000  # a worker that stays silent this long is skipped
    worker_answer_ms: int = 60000  # a worker that has not answered by then is skipped
    # VM_SECRET, shared with the workers; None: nothing is signed. Never logged.
    secret: str | None = field(default=None, repr=False)


# define name -> Settings field
_DEFINES: dict[str, str] = {
    "VM_VOICEBOX_NUMBER": "voicebox_number",
    "VM_ANNRECORDER_NUMBER": "annrecorder_number",
    "VM_NO_ANSWER_TIMEOUT": "no_answer_timeout",
    "VM_ON_STATUS": "voicemail_statuses",
    "VM_WORKER_SET": "worker_set",
    "VM_WORKER_ALGORITHM": "worker_algorithm",
    "VM_GREETING_TYPE": "greeting_type",
    "VM_MAX_BODY": "max_body",
    "VM_MAX_MEDIA": "max_media",
    "VM_MAX_CALLS_PER_SOURCE": "max_calls_per_source",
    "VM_BAN_TIME": "ban_time",
    "VM_AUTH_FAIL_LIMIT": "auth_fail_limit",
    "VM_WORKER_FIRST_RESPONSE_MS": "worker_first_response_ms",
    "VM_WORKER_ANSWER_MS": "worker_answer_ms",
    "VM_SECRET": "secret",
}
# Numeric defines: field -> bounds
_BOUNDS: dict[str, tuple[int, int]] = {
    "no_answer_timeout": (1, 600),
    "worker_set": (0, 65535),
    "worker_algorithm": (0, 65535),
    "max_body": (256, 1_000_000),
    "max_media": (1, 64),
    "max_calls_per_source": (1, 100_000),
    "ban_time": (1, 86400),
    "auth_fail_limit": (1, 100_000),
    "worker_first_response_ms": (1, 3_600_000),
    "worker_answer_ms": (1, 3_600_000),
}


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    return raw


def _number(name: str, text: str, low: int, high: int) -> int:
    # ASCII digits only: int() would also take '²' or ' 7 '.
    if _INTEGER.fullmatch(text) is None:
        raise SettingsError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise SettingsError(f"{name}: {value} is outside {low}..{high}")
    return value


def _access_number(name: str, text: str) -> str:
    if not text or not all(c.isalnum() or c in "*#+" for c in text):
        raise SettingsError(f"{name}: {text!r} is not a dialable number")
    return text


def _statuses(name: str, text: str) -> tuple[int, ...]:
    codes = tuple(_number(name, part.strip(), 300, 699) for part in text.split(",") if part)
    if not codes:
        raise SettingsError(f"{name}: no status codes")
    return codes


def load_settings(read_define: Callable[[str], str | None], *, rtpengine: bool = True) -> Settings:
    """Settings from the defines that are set; the others keep their defaults."""
    values: dict[str, Any] = {}
    for define, field_name in _DEFINES.items():
        raw = read_define(define)
        if raw is None:
            continue
        text = _unquote(str(raw))
        if field_name in ("voicebox_number", "annrecorder_number"):
            values[field_name] = _access_number(define, text)
        elif field_name in _BOUNDS:
            values[field_name] = _number(define, text, *_BOUNDS[field_name])
        elif field_name == "secret":
            try:
                values[field_name] = check_secret(text)
            except ValueError as exc:
                raise SettingsError(f"{define}: {exc}") from None
        elif field_name == "voicemail_statuses":
            values[field_name] = _statuses(define, text)
        else:
            if not text or not text.replace("-", "").replace("_", "").isalnum():
                raise SettingsError(f"{define}: {text!r} is not a greeting type")
            values[field_name] = text
    settings = replace(Settings(rtpengine=rtpengine), **values)
    if settings.voicebox_number == settings.annrecorder_number:
        raise SettingsError("VM_VOICEBOX_NUMBER and VM_ANNRECORDER_NUMBER are the same")
    return settings
