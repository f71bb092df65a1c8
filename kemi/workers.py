"""The KEMI script's calls to a local user and to the media workers: ringing the user's
phones, voicemail when they fail, the access numbers, the worker's headers and
rtpengine offer per branch, and failover to the next worker.
"""

from __future__ import annotations

import time

import KSR  # provided by app_python3; a fake in unit tests

from kemi.app_param import (
    APP_NAME_HEADER,
    APP_PARAM_HEADER,
    ParamError,
    Profile,
    build_app_param,
    preferences_from_rows,
)
from kemi.base import _pv
from kemi.dialogs import InDialog
from kemi.guards import domain, without_trailing_dot
from kemi.names import (
    ANSWER_FROM_WORKER,
    DB_CONNECTION,
    DB_RESULT,
    IS_SUBSCRIBER_FLAGS,
    LOOKUP_METHOD_UNSUPPORTED,
    LOOKUP_NOT_FOUND,
    OFFER_TO_WORKER,
    SIGNATURE_REFUSALS,
    VM_FLT_OFFERED,
    WORKER_ROUTE_PARAM,
)
from kemi.routing import (
    AppCall,
    Target,
    access_target,
    app_for_access,
    app_for_voicemail,
    goes_to_voicemail,
    preferences_query,
)
from kemi.signing import HEADER as SIGNATURE_HEADER
from kemi.signing import sign


class ToWorkers(InDialog):
    """An initial request to a local user or an access number, and the media workers' routes."""

    def local_target(self, authenticated: bool) -> None:
        target = access_target(_pv("$rU"), self.settings)
        if target is not Target.LOCATION:
            if not self.voicemail:
                KSR.sl.sl_send_reply(404, "No voicemail here")
                return
            if not KSR.is_INVITE():
                KSR.sl.sl_send_reply(405, "Method Not Allowed")
                return
            if not authenticated:
                KSR.sl.sl_send_reply(403, "Mailbox access needs authentication")
                return
            if self.new_transaction():
                self.track_dialog(authenticated)
                self.to_worker(app_for_access(target, _pv("$fU"), domain(_pv("$fd"))))
            return
        callee_user, callee_domain = _pv("$rU"), _pv("$rd")
        rc = KSR.registrar.lookup("location")
        if rc < 0:
            if not self.new_transaction():
                return
            if rc in LOOKUP_NOT_FOUND and self.has_mailbox():
                self.log(f"{callee_user}@{callee_domain} not registered: voicemail")
                self.track_dialog(authenticated)
                self.to_worker(app_for_voicemail(callee_user, callee_domain))
                return
            if rc == LOOKUP_METHOD_UNSUPPORTED:
                KSR.tm.t_send_reply(405, "Method Not Allowed")
            else:
                KSR.tm.t_send_reply(404, "Not Found")
            return
        if KSR.is_INVITE() and self.voicemail:
            # Whose mailbox if the phones do not answer: lookup() rewrote the R-URI.
            KSR.pv.sets("$avp(vm_user)", callee_user)
            KSR.pv.sets("$avp(vm_domain)", callee_domain)
            KSR.tm.t_on_failure("ksr_failure_phone")
            KSR.tm.t_set_fr(self.settings.no_answer_timeout * 1000, 0)
        self.track_dialog(authenticated)
        self.relay()

    def has_mailbox(self) -> bool:
        """An INVITE to a local subscriber, with voicemail on."""
        return (
            self.voicemail
            and KSR.is_INVITE()
            and KSR.auth_db.is_subscriber(_pv("$ru"), "subscriber", IS_SUBSCRIBER_FLAGS) > 0
        )

    def to_worker(self, call: AppCall) -> None:
        """Send the INVITE to a worker of the dispatcher set with the app's headers."""
        refusal = self.worker_refusal()
        if refusal is not None:
            self.reply(refusal.status, refusal.reason)
            return
        if (
            KSR.dispatcher.ds_select_dst(self.settings.worker_set, self.settings.worker_algorithm)
            < 0
        ):
            self.log(f"{call.app} for {call.user}@{call.domain}: no media worker available")
            self.reply(503, "Voicemail unavailable")
            return
        try:
            param = build_app_param(
                call.app,
                self.profile(call.user, call.domain),
                sender=without_trailing_dot(_pv("$fu")) or None,
                default_typ=self.settings.greeting_type,
            )
        except (ParamError, ValueError) as exc:
            self.log(f"{call.app} for {call.user}@{call.domain}: {exc}")
            self.reply(500, "Voicemail profile unusable")
            return
        KSR.seturi(f"sip:{call.user}@{call.domain}")
        KSR.pv.sets("$avp(vm_ruri)", f"sip:{call.user}@{call.domain}")
        # The branch route adds the headers and the rtpengine offer to each branch
        # toward a worker, the failover's too; a phone's branch never carries them.
        KSR.pv.sets("$avp(vm_app)", call.app)
        KSR.pv.sets("$avp(vm_param)", param)
        if self.settings.rtpengine and KSR.textops.has_body_type("application/sdp") > 0:
            KSR.setflag(VM_FLT_OFFERED)
        self.log(f"to {call.app} at {_pv('$du')}: {param}")
        self.relay_to_worker()

    def relay_to_worker(self) -> None:
        """Relay to the worker in $du; a failover relays the same request again."""
        KSR.tm.t_on_branch("ksr_branch_worker")
        KSR.tm.t_on_reply("ksr_onreply_worker")
        KSR.tm.t_on_failure("ksr_failure_worker")
        KSR.tm.t_set_fr(self.settings.worker_answer_ms, self.settings.worker_first_response_ms)
        if KSR.tm.t_relay() < 0:  # no branch left (rtpengine refused every offer)
            self.release_media()
            KSR.tm.t_send_reply(503, "Voicemail unavailable")

    def worker_branch(self) -> int:
        app, param = _pv("$avp(vm_app)").strip(), _pv("$avp(vm_param)").strip()
        KSR.hdr.append(f"{APP_NAME_HEADER}: {app}\r\n")
        KSR.hdr.append(f"{APP_PARAM_HEADER}: {param}\r\n")
        if self.settings.secret is not None:
            # Per branch: a failover's request is signed afresh.
            try:
                signature = sign(
                    self.settings.secret, int(time.time()), (_pv("$ci").strip(), app, param)
                )
            except ValueError as exc:  # a Call-ID with '|' cannot be signed unambiguously
                self.log(f"not signing toward {_pv('$du')}: {exc}: branch dropped")
                KSR.set_drop()
                return 1
            KSR.hdr.append(f"{SIGNATURE_HEADER}: {signature}\r\n")
        KSR.rr.add_rr_param(";" + WORKER_ROUTE_PARAM)
        if KSR.isflagset(VM_FLT_OFFERED) and KSR.rtpengine.rtpengine_offer(OFFER_TO_WORKER) < 0:
            self.log(f"rtpengine refused the offer toward {_pv('$du')}: branch dropped")
            KSR.set_drop()
        return 1

    def profile(self, user: str, domain: str) -> Profile:
        rows: list[tuple[str, str]] = []
        query = preferences_query("usr_preferences", user, domain)
        # sql_query answers 0 (not 1) after a query with rows; only < 0 is a failure.
        if KSR.sqlops.sql_query(DB_CONNECTION, query, DB_RESULT) >= 0:
            for row in range(KSR.sqlops.sql_num_rows(DB_RESULT)):
                attribute = KSR.sqlops.sql_result_get(DB_RESULT, row, 0)
                value = KSR.sqlops.sql_result_get(DB_RESULT, row, 1)
                if attribute is not None and value is not None:
                    rows.append((str(attribute), str(value)))
            KSR.sqlops.sql_result_free(DB_RESULT)
        else:  # the message is still taken, with the worker's defaults (box mode)
            self.log(f"usr_preferences of {user}@{domain} unreadable: default profile")
        return Profile(user, domain, preferences_from_rows(rows))

    def worker_reply(self) -> int:
        if self.settings.rtpengine and KSR.textops.has_body_type("application/sdp") > 0:
            if KSR.isflagset(VM_FLT_OFFERED):
                KSR.rtpengine.rtpengine_answer(ANSWER_FROM_WORKER)
            else:  # late offer: the worker offers in its 200, the ACK answers
                KSR.rtpengine.rtpengine_offer(ANSWER_FROM_WORKER)
        return 1

    def phone_failed(self) -> int:
        if KSR.tm.t_is_canceled() > 0:
            return 1
        status = KSR.tm.t_get_status_code()
        timed_out = KSR.tm.t_branch_timeout() > 0  # no answer: the INVITE timer fired
        if not goes_to_voicemail(status, self.settings, timed_out=timed_out):
            return 1
        user, domain = _pv("$avp(vm_user)"), _pv("$avp(vm_domain)")
        self.log(
            f"{user}@{domain} answered {status}{' (no answer)' if timed_out else ''}: voicemail"
        )
        self.to_worker(app_for_voicemail(user, domain))
        return 1

    def worker_failed(self) -> int:
        """A worker's branch failed. Nothing is marked down here: a timeout or 5xx (a
        busy worker's 503, a request it could not parse) is one call's, and only the
        OPTIONS probes decide whether a worker is in service."""
        if KSR.tm.t_is_canceled() > 0:
            self.log("cancelled by the caller")
            self.release_media()
            return 1
        status = KSR.tm.t_get_status_code()
        timed_out = KSR.tm.t_branch_timeout() > 0
        refused_signature = status == 403 and _pv("$T_reply_reason") in SIGNATURE_REFUSALS
        if refused_signature:
            # Another secret or a clock off by more than the signature's age: this
            # worker refuses every call, the others may not (the probes cannot tell).
            KSR.warn(
                f"voicemail [{_pv('$ci')}]: worker {_pv('$du')} refused the signature "
                f"({_pv('$T_reply_reason')}): check VM_SECRET, its sip.secret and both clocks\n"
            )
        elif status < 500 and not timed_out:
            self.release_media()
            return 1  # the worker's own answer (a refused parameter, say): pass it on
        failed = _pv("$du")
        if KSR.dispatcher.ds_next_dst() < 0:
            self.log(f"worker {failed} failed ({status}); no other worker left")
            self.release_media()
            return 1
        self.log(f"worker {failed} failed ({status}); trying {_pv('$du')}")
        # A failure route starts from the R-URI the transaction was created with.
        KSR.seturi(_pv("$avp(vm_ruri)"))
        self.relay_to_worker()
        return 1
