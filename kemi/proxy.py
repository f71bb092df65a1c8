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
import time

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
from kemi.guards import (
    TOO_MANY_CALLS,
    Hop,
    Refusal,
    ascii_number,
    auth_failure_keys,
    ban_due,
    body_refusal,
    contact_uri,
    counts_as_failure,
    domain,
    has_address_host,
    route_refusal,
    split_route_set,
    toward_peer,
    without_trailing_dot,
)
from kemi.mwi import (
    MWI_EVENT,
    REFRESH_NOTIFY,
    REPLIES,
    MwiVerdict,
    event_package,
    publication_fields,
    publish_verdict,
    relayed_notify_refused,
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
from kemi.signing import HEADER as SIGNATURE_HEADER
from kemi.signing import SignatureError, sign, verify

# Kamailio's magic values, named. The flags are kamailio.cfg's defines of the same name,
# which the native routes (kamailio-cfg/native/) use too.
FLT_NATS = 5  # transaction flag: the caller is behind NAT
FLB_NATB = 6  # branch flag: the callee is behind NAT
VM_FLT_OFFERED = 9  # transaction flag: rtpengine has the caller's offer (else: late offer)
VM_FLT_AUTH = 10  # transaction flag: the caller proved to be the From user
NAT_TESTS = 19  # nat_uac_test: private Contact, Via received != source, rport, SDP
LOOKUP_NOT_FOUND = (-1, -3)  # registrar.lookup: no contact / internal error (as upstream)
LOOKUP_METHOD_UNSUPPORTED = -2
# is_subscriber flags: 1 match the domain too, 2 only check existence (load nothing).
IS_SUBSCRIBER_FLAGS = 3
DB_CONNECTION, DB_RESULT = "vm", "vm_prefs"  # sqlops connection (cfg) and result names
WORKER_ROUTE_PARAM = "vm=1"  # Record-Route param of calls anchored toward a worker
# Dialog variables of a call to a phone: the callee's Contacts, where the caller's
# in-dialog requests may go (space separated: several phones of a fork).
PEER_VAR, EARLY_PEER_VAR = "$dlg_var(vm_peer)", "$dlg_var(vm_early)"
HOPS_VAR = "$dlg_var(vm_hops)"  # the Record-Route URIs of those replies (callee's proxies)
# The caller's Contact (the initial INVITE's, a re-INVITE's) and its next hops (its
# source address: a NAT alias; the INVITE's Record-Route): where the callee's may go.
CALLER_VAR, CALLER_HOPS_VAR = "$dlg_var(vm_caller)", "$dlg_var(vm_caller_hops)"
# rtpengine toward the worker: only G.711 and telephone-event, plain RTP, no ICE; the
# phone keeps whatever it offered and rtpengine transcodes.
# strict-source: after learning a phone's address rtpengine drops packets from others.
OFFER_TO_WORKER = (
    "replace-origin replace-session-connection ICE=remove RTP/AVP "
    "codec-mask-all codec-transcode-PCMU codec-transcode-PCMA "
    "codec-transcode-telephone-event strict-source"
)
ANSWER_FROM_WORKER = "replace-origin replace-session-connection"

# cfg defines that switch features; read with $def().
DEFINE_AUTH, DEFINE_RTPENGINE, DEFINE_VOICEMAIL = "WITH_AUTH", "WITH_RTPENGINE", "WITH_VOICEMAIL"
DEFINE_MWI = "WITH_MWI"
DEFINE_ANTIFLOOD = "WITH_ANTIFLOOD"
# htable tables (kamailio.cfg) and the dialog profile of unauthenticated calls
BAN_TABLE, AUTH_FAIL_TABLE = "ipban", "authfail"
SOURCE_PROFILE = "vm_source"
DS_ANY_SET = -1
# The reasons of a worker's 403 to a request it cannot verify (media_worker/signature.py).
SIGNATURE_REFUSALS = frozenset(
    {"Unsigned request", "Malformed signature", "Stale signature", "Bad signature"}
)
DS_MATCH_NOPROTO = 2  # ds_is_from_list_uri: address and port count, the transport not
CHALLENGE_QOP_AUTH = 1  # auth_challenge flags: offer qop=auth (nonce_count needs it)
DEFINE_MWI_REFRESH_ON_REGISTER = "MWI_REFRESH_ON_REGISTER"  # kamailio.cfg: 1 by default


def _define(name: str) -> str | None:
    value = KSR.pv.get(f"$def({name})")
    return None if value is None else str(value)


def _pv(name: str) -> str:
    value = KSR.pv.get(name)
    return "" if value is None else str(value)


def _status(value: str) -> int:
    return ascii_number(value, 999) or 0


def mod_init() -> HomeProxy:
    """Called once by app_python3; the object's methods are the routes."""
    return HomeProxy()


class HomeProxy:
    def __init__(self) -> None:
        self.auth = _define(DEFINE_AUTH) is not None
        self.voicemail = _define(DEFINE_VOICEMAIL) is not None
        self.mwi = _define(DEFINE_MWI) is not None  # kamailio.cfg: implies WITH_VOICEMAIL
        self.antiflood = _define(DEFINE_ANTIFLOOD) is not None
        refresh = _define(DEFINE_MWI_REFRESH_ON_REGISTER)
        self.mwi_refresh_on_register = self.mwi and refresh is not None and refresh.strip() != "0"
        self.settings: Settings = load_settings(
            _define, rtpengine=_define(DEFINE_RTPENGINE) is not None
        )
        KSR.info(
            f"voicemail proxy: auth={self.auth} voicemail={self.voicemail} mwi={self.mwi} "
            f"antiflood={self.antiflood} signing={self.settings.secret is not None} "
            f"settings={self.settings}\n"
        )
        if self.voicemail and self.settings.secret is None:
            KSR.warn(
                "voicemail proxy: VM_SECRET is not set: requests to the media workers are "
                "not signed and message-summary PUBLISH is accepted by source address\n"
            )

    def child_init(self, rank: int) -> int:
        return 0

    # ----- request route -----

    def ksr_request_route(self, msg: object) -> int:
        if self.banned():
            return 1  # dropped without an answer
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
        if relayed_notify_refused(_pv("$rm"), _pv("$hdr(Event)")):
            self.refuse(403, "Mailbox state comes from this proxy", "forged message-summary")
            return 1
        if KSR.siputils.has_totag() > 0:
            self.within_dialog()
            return 1
        if KSR.is_ACK():
            return 1  # an ACK without To-tag belongs to a transaction t_check_trans ended
        ruri = _pv("$ru")
        if without_trailing_dot(ruri) != ruri:  # lab.example. is lab.example
            KSR.seturi(without_trailing_dot(ruri))
        if not self.route_set_acceptable():
            return 1
        KSR.textops.remove_hf("Route")  # a preloaded route is not followed (as upstream)
        if self.mwi and KSR.is_method_in("PS") and KSR.is_myself_ruri():
            self.message_summary()
            return 1
        authenticated = self.authenticate()
        if authenticated is None:
            return 1
        if KSR.is_INVITE():
            # Only INVITE dialogs are tracked (dialog module): only they are record-routed.
            KSR.rr.record_route()
        if KSR.is_REGISTER():
            self.register()
            return 1
        if not _pv("$rU"):
            KSR.sl.sl_send_reply(484, "Address Incomplete")
            return 1
        if not KSR.is_myself_ruri():
            if authenticated:
                self.track_dialog(authenticated)
                self.relay()  # a local caller to a foreign domain
            else:  # without WITH_AUTH nobody is known to be local: no open relay
                KSR.sl.sl_send_reply(403, "Not relaying")
            return 1
        self.local_target(authenticated)
        return 1

    # ----- what is refused before anything is held -----

    def exempt_source(self) -> bool:
        """This proxy's own addresses and the media workers are never banned."""
        if KSR.is_myself_srcip():
            return True
        return self.voicemail and KSR.dispatcher.ds_is_from_list(DS_ANY_SET) > 0

    def banned(self) -> bool:
        """A banned source, or one pike finds flooding (banned from now on)."""
        if self.exempt_source():
            return False
        source = _pv("$si")
        if KSR.htable.sht_get(BAN_TABLE, source) is not None:
            return True
        if self.antiflood and KSR.pike.pike_check_req() < 0:
            self.ban(source, f"request flood ({_pv('$rm')} from {_pv('$fu')})")
            return True
        return False

    def ban(self, source: str, why: str) -> None:
        """Ban ``source`` for VM_BAN_TIME; one log line per ban, though several Kamailio
        processes may see the same flood at once."""
        KSR.htable.sht_lock(BAN_TABLE, source)
        try:
            new = KSR.htable.sht_get(BAN_TABLE, source) is None
            if new:
                KSR.htable.sht_seti(BAN_TABLE, source, 1)
        finally:
            KSR.htable.sht_unlock(BAN_TABLE, source)
        if new:
            KSR.warn(f"voicemail: banning {source} for {self.settings.ban_time} s: {why}\n")

    def body_refusal(self) -> Refusal | None:
        """An INVITE toward a worker: its body within VM_MAX_BODY and VM_MAX_MEDIA, before
        rtpengine sees it (calls between phones never reach rtpengine or a worker)."""
        size = KSR.pv.get("$bs")
        body: str | None
        try:
            value = KSR.pv.get("$rb")
            body = "" if value is None else str(value)
        except UnicodeDecodeError:  # app_python3 gives text; a binary body is no SDP
            body = None
        refusal = body_refusal(
            size if isinstance(size, int) else 0,
            body,
            max_body=self.settings.max_body,
            max_media=self.settings.max_media,
        )
        if refusal is not None:
            self.log_refusal(refusal.status, refusal.reason, f"INVITE body of {size} bytes")
        return refusal

    def route_set_acceptable(self) -> bool:
        """An initial request from outside the dispatcher set may not aim at a worker,
        nor use this proxy as a hop to somewhere else."""
        if not self.voicemail or KSR.dispatcher.ds_is_from_list(DS_ANY_SET) > 0:
            return True
        count = KSR.pv.get("$hdrc(Route)")
        values = [_pv(f"$(hdr(Route)[{i}])") for i in range(count if isinstance(count, int) else 0)]
        # A Route is never followed (removed below): only an address in it is compared,
        # a name is not looked up in the DNS for nothing. The R-URI is, when not ours.
        routes = [self.hop(uri, resolve=False) for uri in split_route_set(values)]
        ruri = Hop(myself=bool(KSR.is_myself_ruri()), worker=False)
        if not ruri.myself:
            ruri = self.hop(_pv("$ru"), resolve=True)
        refusal = route_refusal(ruri, routes)
        if refusal is None:
            return True
        self.refuse(refusal.status, refusal.reason, f"R-URI {_pv('$ru')} Route {values}")
        return False

    @staticmethod
    def hop(uri: str, *, resolve: bool) -> Hop:
        """``uri`` is this proxy, or a worker's address (dispatcher's comparison, which
        resolves a name in the DNS: only with ``resolve``)."""
        if KSR.is_myself(uri):
            return Hop(myself=True, worker=False)
        if not resolve and not has_address_host(uri):
            return Hop(myself=False, worker=False)
        worker = KSR.dispatcher.ds_is_from_list_uri(DS_ANY_SET, DS_MATCH_NOPROTO, uri) > 0
        return Hop(myself=False, worker=worker)

    def worker_refusal(self) -> Refusal | None:
        """An initial INVITE about to go to a worker: its body, and (unauthenticated) the
        VM_MAX_CALLS_PER_SOURCE voicemail calls in progress from its address, which it
        joins when it passes."""
        refusal = self.body_refusal()
        if refusal is not None or KSR.isflagset(VM_FLT_AUTH):
            return refusal
        source = _pv("$si")
        KSR.dialog.get_profile_size(SOURCE_PROFILE, source, "$avp(vm_source_calls)")
        calls = KSR.pv.get("$avp(vm_source_calls)")
        if isinstance(calls, int) and calls >= self.settings.max_calls_per_source:
            self.log_refusal(
                TOO_MANY_CALLS.status, TOO_MANY_CALLS.reason, f"{calls} calls from {source}"
            )
            return TOO_MANY_CALLS
        KSR.dialog.set_dlg_profile(SOURCE_PROFILE, source)
        return None

    def track_dialog(self, authenticated: bool) -> None:
        """An initial INVITE this proxy relays: its in-dialog requests will be known."""
        if not KSR.is_INVITE():
            return
        KSR.dialog.dlg_manage()
        # The callee's Contacts (its replies with a To-tag) are where the caller's
        # in-dialog requests may go; a worker's branch arms its own reply route.
        KSR.tm.t_on_reply("ksr_onreply_peer")
        self.remember_caller()
        if authenticated:
            KSR.setflag(VM_FLT_AUTH)

    def remember_caller(self) -> None:
        """Where the callee's in-dialog requests may go: the caller's Contact, by its
        source address (a NAT alias) or a proxy of its Record-Route."""
        contact = contact_uri(_pv("$ct"))
        if contact is None or " " in contact:
            return
        source = _pv("$si")
        hops = [f"sip:[{source}]:{_pv('$sp')}" if ":" in source else f"sip:{source}:{_pv('$sp')}"]
        if KSR.is_INVITE() and KSR.siputils.has_totag() < 0:
            count = KSR.pv.get("$hdrc(Record-Route)")
            values = [
                _pv(f"$(hdr(Record-Route)[{i}])")
                for i in range(count if isinstance(count, int) else 0)
            ]
            hops += [uri for uri in split_route_set(values) if " " not in uri]
        else:  # a target refresh: the hops stay, the source joins them
            hops = [*_pv(CALLER_HOPS_VAR).split(), *hops]
        KSR.pv.sets(CALLER_VAR, contact)
        KSR.pv.sets(CALLER_HOPS_VAR, " ".join(dict.fromkeys(hops)))

    def refuse(self, status: int, reason: str, what: str) -> None:
        """A stateless refusal with a log line (an ACK gets none, only the line)."""
        self.log_refusal(status, reason, what)
        if not KSR.is_ACK():
            KSR.sl.sl_send_reply(status, reason)

    def log_refusal(self, status: int, reason: str, what: str) -> None:
        self.log(f"{_pv('$rm')} from {_pv('$si')}:{_pv('$sp')} refused {status} {reason}: {what}")

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
            if KSR.dialog.is_known_dlg() < 0:
                if KSR.is_ACK():  # of a negative reply: tm's business
                    if KSR.tm.t_check_trans() > 0:
                        self.relay()
                    return
                self.refuse(404, "Not here", f"in-dialog request to {_pv('$ru')}, no such dialog")
                return
            if KSR.rr.check_route_param(WORKER_ROUTE_PARAM) < 0:
                if self.toward_dialog_peer():
                    self.relay()
                return
            KSR.nathelper.handle_ruri_alias()
            if not self.toward_dialog_worker():
                return
            refusal = self.body_refusal() if KSR.is_INVITE() else None
            if refusal is not None:
                KSR.sl.sl_send_reply(refusal.status, refusal.reason)
                return
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

    def toward_dialog_peer(self) -> bool:
        """A call to a phone (or from a local phone to another domain): what the caller
        sends in it goes to the callee's Contact the dialog stored (any ringing phone's
        while early, the answering one's after), never to a target of the caller's
        choice (a gateway that trusts this proxy's address); what the callee sends goes
        to the caller's Contact the same way."""
        ruri = _pv("$ru")  # before alias handling rewrites it
        KSR.nathelper.handle_ruri_alias()
        from_caller = _pv("$ft") == _pv("$dlg(from_tag)")
        if from_caller:
            peers = _pv(PEER_VAR).split() or _pv(EARLY_PEER_VAR).split()
            hops = _pv(HOPS_VAR).split()
        else:
            peers, hops = _pv(CALLER_VAR).split(), _pv(CALLER_HOPS_VAR).split()
        next_hop = _pv("$du")
        if not toward_peer(ruri, next_hop, peers, hops):
            self.refuse(
                403, "Not in this dialog", f"in-dialog request to {ruri} ({next_hop}), not {peers}"
            )
            return False
        if from_caller and KSR.is_method_in("IU"):
            KSR.tm.t_on_reply("ksr_onreply_refresh")  # its 2xx may move the callee
            self.remember_caller()  # and it may move the caller
        return True

    def toward_dialog_worker(self) -> bool:
        """A call to a worker has two ends, the caller and a worker: what the caller sends
        in it goes to a worker, never to a target of the caller's choice (a gateway that
        trusts this proxy's address), however known the dialog is."""
        if KSR.dispatcher.ds_is_from_list(DS_ANY_SET) > 0:
            return True  # the worker's requests go to the caller
        # Where it would go: the R-URI, and the next hop a further Route or an alias set.
        targets = [uri for uri in (_pv("$ru"), _pv("$du")) if uri]
        if all(
            KSR.dispatcher.ds_is_from_list_uri(DS_ANY_SET, DS_MATCH_NOPROTO, uri) > 0
            for uri in targets
        ):
            return True
        self.refuse(403, "Not in this dialog", f"in-dialog request to {targets}, not a worker")
        return False

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
                KSR.setflag(VM_FLT_OFFERED)
            KSR.tm.t_on_reply("ksr_onreply_worker")
        elif KSR.is_ACK() and KSR.textops.has_body_type("application/sdp") > 0:
            KSR.rtpengine.rtpengine_answer(ANSWER_FROM_WORKER)

    def authenticate(self) -> bool | None:
        """True: the caller proved to be the local user in From; False: not
        authenticated (a foreign caller, or auth is off); None: answered here."""
        if not self.auth:
            return False
        if KSR.is_REGISTER() or KSR.is_myself(without_trailing_dot(_pv("$fu"))):
            realm = domain(_pv("$fd"))
            result = KSR.auth_db.auth_check(realm, "subscriber", 1)
            if result < 0:
                if counts_as_failure(result) and self.auth_failed(realm):
                    return None  # banned: no new challenge
                KSR.auth.auth_challenge(realm, CHALLENGE_QOP_AUTH)
                return None
            if not KSR.is_method_in("RP"):
                KSR.auth.consume_credentials()
            return True
        if not KSR.is_myself_ruri():
            KSR.sl.sl_send_reply(403, "Not relaying")
            return None
        return False

    def auth_failed(self, realm: str) -> bool:
        """Count a wrong password or unknown user for the source and for the user; True
        when that bans the source (one log line per ban)."""
        source = _pv("$si")
        user = f"{_pv('$au') or _pv('$fU')}@{_pv('$ar') or realm}"
        counts = []
        for key in auth_failure_keys(source, user):
            value = KSR.htable.sht_get(AUTH_FAIL_TABLE, key)
            count = (value if isinstance(value, int) else 0) + 1
            KSR.htable.sht_seti(AUTH_FAIL_TABLE, key, count)
            counts.append(count)
        if not ban_due(counts[0], counts[1], self.settings.auth_fail_limit):
            return False
        if self.exempt_source():
            return False
        self.ban(source, f"{counts[0]} failed authentications from it, {counts[1]} as {user}")
        return True

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

    # ----- message-waiting indication (presence) -----

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

    # ----- to a media worker -----

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

    def ksr_branch_worker(self, msg: object) -> int:
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

    # ----- reply and failure routes -----

    def ksr_reply_route(self, msg: object) -> int:
        """Every reply passes here (app_python3 calls it whether or not it is set)."""
        return 1

    def ksr_onsend_route(self, msg: object) -> int:
        """Every message sent passes here (app_python3 looks it up unconditionally)."""
        return 1

    def ksr_onreply_peer(self, msg: object) -> int:
        """A reply to an initial INVITE toward a phone (or another domain): a 1xx or 2xx
        with a To-tag names the callee's Contact, where the caller's requests may go
        (any of the 1xx while early; the 2xx's once answered)."""
        status = _status(_pv("$rs"))
        contact = contact_uri(_pv("$ct"))
        if contact is None or not _pv("$tt") or not 100 < status < 300:
            return 1
        count = KSR.pv.get("$hdrc(Record-Route)")
        values = [
            _pv(f"$(hdr(Record-Route)[{i}])") for i in range(count if isinstance(count, int) else 0)
        ]
        for name, uris in (
            (PEER_VAR if status >= 200 else EARLY_PEER_VAR, [contact]),
            (HOPS_VAR, split_route_set(values)),  # proxies on the callee's side, ours too
        ):
            stored = _pv(name).split()
            added = [uri for uri in uris if uri not in stored and " " not in uri]
            if added:
                KSR.pv.sets(name, " ".join([*stored, *added]))
        return 1

    def ksr_onreply_refresh(self, msg: object) -> int:
        """A 2xx to the caller's re-INVITE or UPDATE: the callee's Contact may have moved."""
        contact = contact_uri(_pv("$ct"))
        if contact is not None and 200 <= _status(_pv("$rs")) < 300:
            KSR.pv.sets(PEER_VAR, contact)
        return 1

    def ksr_onreply_worker(self, msg: object) -> int:
        if self.settings.rtpengine and KSR.textops.has_body_type("application/sdp") > 0:
            if KSR.isflagset(VM_FLT_OFFERED):
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

    # ----- helpers -----

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
