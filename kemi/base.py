"""What every route group of the KEMI script shares: reading pseudo-variables and
defines, the switches and settings, stateless refusals, relaying and logging.
"""

from __future__ import annotations

import KSR  # provided by app_python3; a fake in unit tests

from kemi.guards import ascii_number
from kemi.names import VM_FLT_OFFERED
from kemi.settings import Settings


def _define(name: str) -> str | None:
    value = KSR.pv.get(f"$def({name})")
    return None if value is None else str(value)


def _pv(name: str) -> str:
    value = KSR.pv.get(name)
    return "" if value is None else str(value)


def _status(value: str) -> int:
    return ascii_number(value, 999) or 0


class ScriptBase:
    """The switches and settings (set by kemi.proxy's HomeProxy) and the shared steps."""

    auth: bool
    voicemail: bool
    mwi: bool  # kamailio.cfg: implies WITH_VOICEMAIL
    antiflood: bool
    mwi_refresh_on_register: bool
    settings: Settings

    def refuse(self, status: int, reason: str, what: str) -> None:
        """A stateless refusal with a log line (an ACK gets none, only the line)."""
        self.log_refusal(status, reason, what)
        if not KSR.is_ACK():
            KSR.sl.sl_send_reply(status, reason)

    def log_refusal(self, status: int, reason: str, what: str) -> None:
        self.log(f"{_pv('$rm')} from {_pv('$si')}:{_pv('$sp')} refused {status} {reason}: {what}")

    @staticmethod
    def new_transaction() -> bool:
        """The transaction this request is answered in; without one, a stateless 500."""
        if KSR.tm.t_newtran() < 0:
            KSR.sl.sl_reply_error()
            return False
        return True

    def release_media(self) -> None:
        """The call toward a worker ended before it was set up: rtpengine frees its ports
        now, not at its own timeout."""
        if self.settings.rtpengine and KSR.isflagset(VM_FLT_OFFERED):
            KSR.rtpengine.rtpengine_delete0()

    def relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    def reply(self, status: int, reason: str) -> None:
        KSR.tm.t_send_reply(status, reason)  # to_worker always runs in a transaction

    def log(self, text: str) -> None:
        # KSR.info does not expand $-variables, so values a caller chose stay text.
        KSR.info(f"voicemail [{_pv('$ci')}]: {text}\n")
