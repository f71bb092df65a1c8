"""The KEMI script's REGISTER and message-waiting indication: registrations (which
refresh a phone's MWI), a worker's PUBLISH and a user's SUBSCRIBE to their mailbox.
"""

from __future__ import annotations

import time

import KSR  # provided by app_python3; a fake in unit tests

from kemi.base import _pv
from kemi.defences import Defences
from kemi.guards import domain
from kemi.mwi import (
    MWI_EVENT,
    REFRESH_NOTIFY,
    REPLIES,
    MwiVerdict,
    event_package,
    publication_fields,
    publish_verdict,
    subscribe_verdict,
)
from kemi.names import FLB_NATB, FLT_NATS
from kemi.signing import HEADER as SIGNATURE_HEADER
from kemi.signing import SignatureError, verify


class Presence(Defences):
    """REGISTER, and message-summary PUBLISH and SUBSCRIBE to this proxy."""

    def register(self) -> None:
        if not KSR.is_myself_ruri():
            KSR.sl.sl_send_reply(403, "Not a local domain")
            return
        if KSR.isflagset(FLT_NATS):
            KSR.setbflag(FLB_NATB)
        if KSR.registrar.save("location", 0) < 0:
            KSR.sl.sl_reply_error()
            return
        if self.mwi_refresh_on_register:
            # A phone that registers (again, after a reboot, say) gets its light back.
            aor = f"sip:{_pv('$tU')}@{domain(_pv('$td'))}"
            if KSR.presence.pres_has_subscribers(aor, MWI_EVENT) > 0:
                KSR.presence.pres_refresh_watchers(aor, MWI_EVENT, REFRESH_NOTIFY)

    def message_summary(self) -> None:
        """PUBLISH from a media worker; SUBSCRIBE from a local user to their own mailbox."""
        event = _pv("$hdr(Event)")
        if KSR.is_PUBLISH():
            from_worker = KSR.dispatcher.ds_is_from_list(self.settings.worker_set) > 0
            error = self.publication_signature_error()
            verdict = publish_verdict(
                event,
                from_worker=from_worker,
                signing=self.settings.secret is not None,
                signature_error=error,
            )
            if error is not None and self.settings.secret is not None:
                self.log(f"PUBLISH {_pv('$ru')} from {_pv('$si')}: {error}")
        else:
            authenticated = False
            if event_package(event) == MWI_EVENT:  # no password asked for a refusal anyway
                checked = self.authenticate()
                if checked is None:
                    return  # challenged
                authenticated = checked
            verdict = subscribe_verdict(
                event,
                authenticated=authenticated,
                subscriber=(_pv("$fU"), domain(_pv("$fd"))),
                mailbox=(_pv("$rU"), _pv("$rd")),
            )
        if verdict in REPLIES:
            status, reason = REPLIES[verdict]
            self.log(f"{_pv('$rm')} {_pv('$ru')} from {_pv('$fu')}: {status} {reason}")
            KSR.sl.sl_send_reply(status, reason)
            return
        self.to_presence(verdict)

    def publication_signature_error(self) -> str | None:
        """Why the PUBLISH's P-App-Signature does not sign it; None: it does (or no
        secret is configured)."""
        secret = self.settings.secret
        if secret is None:
            return None
        try:
            body = KSR.pv.get("$rb")
        except UnicodeDecodeError:  # no worker signs a body that is not text
            return "unreadable body"
        fields = publication_fields(_pv("$ci"), _pv("$ru"), "" if body is None else str(body))
        value = KSR.pv.get(f"$hdr({SIGNATURE_HEADER})")
        try:
            verify(secret, None if value is None else str(value), fields, time.time())
        except SignatureError as exc:
            return str(exc)
        return None

    def to_presence(self, verdict: MwiVerdict) -> None:
        """presence answers (and NOTIFYs) statefully."""
        if not self.new_transaction():
            return
        if verdict is MwiVerdict.PUBLISH:
            KSR.presence.handle_publish()
        else:
            KSR.presence.handle_subscribe()
