"""The home proxy's routing script for Kamailio's app_python3 (KEMI).

kamailio.cfg loads this file with ``modparam("app_python3", "load", ...)`` and
``cfgengine "python"``. Each ``ksr_*`` method is one cfg route; every decision (which
app, which profile, which P-App-Param, voicemail or not) is a pure function in
kemi.routing / kemi.app_param / kemi.settings. Runs on Debian's python3 inside
Kamailio: standard library only.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import KSR  # provided by app_python3; a fake in unit tests

from kemi.app_param import (
    APP_NAME_HEADER,
    APP_PARAM_HEADER,
    CLIENT_HEADER_PATTERN,
    ParamError,
    Profile,
    build_app_param,
    preferences_from_rows,
)
from kemi.mwi import (
    MWI_EVENT,
    REFRESH_NOTIFY,
    REPLIES,
    MwiVerdict,
    event_package,
    publish_verdict,
    subscribe_verdict,
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
from kemi.settings import Settings, load_settings

# Kamailio's magic values, named.
FLT_NATS = 5  # transaction flag: the caller is behind NAT
FLB_NATB = 6  # branch flag: the callee is behind NAT
FLT_OFFERED = 9  # transaction flag: rtpengine has the caller's offer (else: late offer)
NAT_TESTS = 19  # nat_uac_test: private Contact, Via received != source, rport, SDP
LOOKUP_NOT_FOUND = (-1, -3)  # registrar.lookup: no contact / internal error (as upstream)
LOOKUP_METHOD_UNSUPPORTED = -2
# is_subscriber flags: 1 match the domain too, 2 only check existence (load nothing).
IS_SUBSCRIBER_FLAGS = 3
DB_CONNECTION, DB_RESULT = "vm", "vm_prefs"  # sqlops connection (cfg) and result names
WORKER_ROUTE_PARAM = "vm=1"  # Record-Route param of calls anchored toward a worker
WORKER_FIRST_RESPONSE_MS = 2000  # a worker that stays silent this long is skipped
WORKER_ANSWER_MS = 60000
# rtpengine toward the worker: only G.711 and telephone-event, plain RTP, no ICE; the
# phone keeps whatever it offered and rtpengine transcodes.
OFFER_TO_WORKER = (
    "replace-origin replace-session-connection ICE=remove RTP/AVP "
    "codec-mask-all codec-transcode-PCMU codec-transcode-PCMA "
    "codec-transcode-telephone-event"
)
ANSWER_FROM_WORKER = "replace-origin replace-session-connection"

# cfg defines that switch features; read with $def().
DEFINE_AUTH, DEFINE_RTPENGINE, DEFINE_VOICEMAIL = "WITH_AUTH", "WITH_RTPENGINE", "WITH_VOICEMAIL"
DEFINE_MWI = "WITH_MWI"
DEFINE_MWI_REFRESH_ON_REGISTER = "MWI_REFRESH_ON_REGISTER"  # kamailio.cfg: 1 by default


def _define(name: str) -> str | None:
    value = KSR.pv.get(f"$def({name})")
    return None if value is None else str(value)


def _pv(name: str) -> str:
    value = KSR.pv.get(name)
    return "" if value is None else str(value)


def mod_init() -> HomeProxy:
    """Called once by app_python3; the object's methods are the routes."""
    return HomeProxy()


class HomeProxy:
    def __init__(self) -> None:
        self.auth = _define(DEFINE_AUTH) is not None
        self.voicemail = _define(DEFINE_VOICEMAIL) is not None
        self.mwi = _define(DEFINE_MWI) is not None  # kamailio.cfg: implies WITH_VOICEMAIL
        refresh = _define(DEFINE_MWI_REFRESH_ON_REGISTER)
        self.mwi_refresh_on_register = self.mwi and refresh is not None and refresh.strip() != "0"
        self.settings: Settings = load_settings(
            _define, rtpengine=_define(DEFINE_RTPENGINE) is not None
        )
        KSR.info(
            f"voicemail proxy: auth={self.auth} voicemail={self.voicemail} mwi={self.mwi} "
            f"settings={self.settings}\n"
        )

    def child_init(self, rank: int) -> int:
        return 0

    # ----- request route -----

    def ksr_request_route(self, msg: object) -> int:
        if not self.request_checks():
            return 1
        # Nothing a client sends may steer a worker: only this proxy writes P-App-*.
        KSR.textops.remove_hf_re(CLIENT_HEADER_PATTERN)
        self.nat_detect()
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return 1
        # Retransmissions: tm resends the last reply; nothing is routed twice.
        if not KSR.is_ACK():
            if KSR.tmx.t_precheck_trans() > 0:
                KSR.tm.t_check_trans()
                return 1
            if KSR.tm.t_check_trans() == 0:
                return 1
        if KSR.siputils.has_totag() > 0:
            self.within_dialog()
            return 1
        if KSR.is_ACK():
            return 1  # an ACK without To-tag belongs to a transaction t_check_trans ended
        if self.mwi and KSR.is_method_in("PS") and KSR.is_myself_ruri():
            self.message_summary()
            return 1
        authenticated = self.authenticate()
        if authenticated is None:
            return 1
        if KSR.is_method_in("IS"):
            KSR.rr.record_route()
        if KSR.is_REGISTER():
            self.register()
            return 1
        if not _pv("$rU"):
            KSR.sl.sl_send_reply(484, "Address Incomplete")
            return 1
        if not KSR.is_myself_ruri():
            if authenticated:
                self.relay()  # a local caller to a foreign domain
            else:  # without WITH_AUTH nobody is known to be local: no open relay
                KSR.sl.sl_send_reply(403, "Not relaying")
            return 1
        self.local_target(authenticated)
        return 1

    def request_checks(self) -> bool:
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return False
        if KSR.sanity.sanity_check_defaults() < 0:
            KSR.err(f"malformed request from {_pv('$si')}:{_pv('$sp')}\n")
            return False
        if KSR.is_OPTIONS() and KSR.is_myself_ruri() and not _pv("$rU"):
            KSR.siputils.options_reply()  # keepalives and probes of this proxy
            return False
        return True

    def nat_detect(self) -> None:
        KSR.force_rport()
        if KSR.nathelper.nat_uac_test(NAT_TESTS) > 0:
            if KSR.is_REGISTER():
                KSR.nathelper.fix_nated_register()
            elif KSR.siputils.is_first_hop() > 0:
                KSR.nathelper.set_contact_alias()
            KSR.setflag(FLT_NATS)

    def within_dialog(self) -> None:
        if KSR.rr.loose_route() > 0:
            KSR.nathelper.handle_ruri_alias()
            if KSR.rr.check_route_param(WORKER_ROUTE_PARAM) > 0:
                self.worker_dialog_media()
            self.relay()
            return
        if self.mwi and KSR.is_SUBSCRIBE() and KSR.is_myself_ruri():
            self.to_presence(MwiVerdict.SUBSCRIBE)  # a refresh or end of a subscription
            return
        if KSR.is_ACK():
            if KSR.tm.t_check_trans() > 0:
                self.relay()
            return  # an ACK of a stateless reply: drop it
        KSR.sl.sl_send_reply(404, "Not here")

    def worker_dialog_media(self) -> None:
        """In-dialog requests of a call anchored toward a worker."""
        if not self.settings.rtpengine:
            return
        if KSR.is_BYE():
            KSR.rtpengine.rtpengine_delete0()
        elif KSR.is_INVITE():
            if (
                KSR.textops.has_body_type("application/sdp") > 0
                and KSR.rtpengine.rtpengine_offer(OFFER_TO_WORKER) > 0
            ):
                KSR.setflag(FLT_OFFERED)
            KSR.tm.t_on_reply("ksr_onreply_worker")
        elif KSR.is_ACK() and KSR.textops.has_body_type("application/sdp") > 0:
            KSR.rtpengine.rtpengine_answer(ANSWER_FROM_WORKER)

    def authenticate(self) -> bool | None:
        """True: the caller proved to be the local user in From; False: not
        authenticated (a foreign caller, or auth is off); None: answered here."""
        if not self.auth:
            return False
        if KSR.is_REGISTER() or KSR.is_myself_furi():
            realm = _pv("$fd")
            if KSR.auth_db.auth_check(realm, "subscriber", 1) < 0:
                KSR.auth.auth_challenge(realm, 0)
                return None
            if not KSR.is_method_in("RP"):
                KSR.auth.consume_credentials()
            return True
        if not KSR.is_myself_ruri():
            KSR.sl.sl_send_reply(403, "Not relaying")
            return None
        return False

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
            aor = f"sip:{_pv('$tU')}@{_pv('$td')}"
            if KSR.presence.pres_has_subscribers(aor, MWI_EVENT) > 0:
                KSR.presence.pres_refresh_watchers(aor, MWI_EVENT, REFRESH_NOTIFY)

    # ----- message-waiting indication (presence) -----

    def message_summary(self) -> None:
        """PUBLISH from a media worker; SUBSCRIBE from a local user to their own mailbox."""
        event = _pv("$hdr(Event)")
        if KSR.is_PUBLISH():
            from_worker = KSR.dispatcher.ds_is_from_list(self.settings.worker_set) > 0
            verdict = publish_verdict(event, from_worker=from_worker)
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
                subscriber=(_pv("$fU"), _pv("$fd")),
                mailbox=(_pv("$rU"), _pv("$rd")),
            )
        if verdict in REPLIES:
            status, reason = REPLIES[verdict]
            self.log(f"{_pv('$rm')} {_pv('$ru')} from {_pv('$fu')}: {status} {reason}")
            KSR.sl.sl_send_reply(status, reason)
            return
        self.to_presence(verdict)

    @staticmethod
    def new_transaction() -> bool:
        """The transaction this request is answered in; without one, a stateless 500."""
        if KSR.tm.t_newtran() < 0:
            KSR.sl.sl_reply_error()
            return False
        return True

    def to_presence(self, verdict: MwiVerdict) -> None:
        """presence answers (and NOTIFYs) statefully."""
        if not self.new_transaction():
            return
        if verdict is MwiVerdict.PUBLISH:
            KSR.presence.handle_publish()
        else:
            KSR.presence.handle_subscribe()

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
                self.to_worker(app_for_access(target, _pv("$fU"), _pv("$fd")))
            return
        callee_user, callee_domain = _pv("$rU"), _pv("$rd")
        rc = KSR.registrar.lookup("location")
        if rc < 0:
            if not self.new_transaction():
                return
            if rc in LOOKUP_NOT_FOUND and self.has_mailbox():
                self.log(f"{callee_user}@{callee_domain} not registered: voicemail")
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
        self.relay()

    def has_mailbox(self) -> bool:
        """An INVITE to a local subscriber, with voicemail on."""
        return (
            self.voicemail
            and KSR.is_INVITE()
            and KSR.auth_db.is_subscriber(_pv("$ru"), "subscriber", IS_SUBSCRIBER_FLAGS) > 0
        )

    # ----- to a media worker -----

    def to_worker(self, call: AppCall) -> None:
        """Send the INVITE to a worker of the dispatcher set with the app's headers."""
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
                sender=_pv("$fu") or None,
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
            KSR.setflag(FLT_OFFERED)
        self.log(f"to {call.app} at {_pv('$du')}: {param}")
        self.relay_to_worker()

    def relay_to_worker(self) -> None:
        """Relay to the worker in $du; a failover relays the same request again."""
        KSR.tm.t_on_branch("ksr_branch_worker")
        KSR.tm.t_on_reply("ksr_onreply_worker")
        KSR.tm.t_on_failure("ksr_failure_worker")
        KSR.tm.t_set_fr(WORKER_ANSWER_MS, WORKER_FIRST_RESPONSE_MS)
        if KSR.tm.t_relay() < 0:  # no branch left (rtpengine refused every offer)
            KSR.tm.t_send_reply(503, "Voicemail unavailable")

    def ksr_branch_worker(self, msg: object) -> int:
        KSR.hdr.append(f"{APP_NAME_HEADER}: {_pv('$avp(vm_app)')}\r\n")
        KSR.hdr.append(f"{APP_PARAM_HEADER}: {_pv('$avp(vm_param)')}\r\n")
        KSR.rr.add_rr_param(";" + WORKER_ROUTE_PARAM)
        if KSR.isflagset(FLT_OFFERED) and KSR.rtpengine.rtpengine_offer(OFFER_TO_WORKER) < 0:
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

    # ----- reply and failure routes -----

    def ksr_reply_route(self, msg: object) -> int:
        """Every reply passes here (app_python3 calls it whether or not it is set)."""
        return 1

    def ksr_onsend_route(self, msg: object) -> int:
        """Every message sent passes here (app_python3 looks it up unconditionally)."""
        return 1

    def ksr_onreply_worker(self, msg: object) -> int:
        if self.settings.rtpengine and KSR.textops.has_body_type("application/sdp") > 0:
            if KSR.isflagset(FLT_OFFERED):
                KSR.rtpengine.rtpengine_answer(ANSWER_FROM_WORKER)
            else:  # late offer: the worker offers in its 200, the ACK answers
                KSR.rtpengine.rtpengine_offer(ANSWER_FROM_WORKER)
        return 1

    def ksr_failure_phone(self, msg: object) -> int:
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

    def ksr_failure_worker(self, msg: object) -> int:
        if KSR.tm.t_is_canceled() > 0:
            return 1
        status = KSR.tm.t_get_status_code()
        if status < 500 and not (KSR.tm.t_branch_timeout() > 0):
            return 1  # the worker's own answer (a refused parameter, say): pass it on
        KSR.dispatcher.ds_mark_dst_state("ip")
        if KSR.dispatcher.ds_next_dst() < 0:
            self.log(f"worker {_pv('$du')} failed ({status}); no other worker left")
            return 1
        self.log(f"worker failed ({status}); trying {_pv('$du')}")
        # A failure route starts from the R-URI the transaction was created with.
        KSR.seturi(_pv("$avp(vm_ruri)"))
        self.relay_to_worker()
        return 1

    # ----- helpers -----

    def relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    def reply(self, status: int, reason: str) -> None:
        KSR.tm.t_send_reply(status, reason)  # to_worker always runs in a transaction

    def log(self, text: str) -> None:
        # KSR.info does not expand $-variables, so values a caller chose stay text.
        KSR.info(f"voicemail [{_pv('$ci')}]: {text}\n")
