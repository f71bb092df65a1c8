"""The KEMI script's checks of an initial request before anything is held: bans and
floods, the body and route set, calls per source, authentication and its failures.
"""

from __future__ import annotations

import KSR  # provided by app_python3; a fake in unit tests

from kemi.base import ScriptBase, _pv
from kemi.guards import (
    TOO_MANY_CALLS,
    Hop,
    Refusal,
    auth_failure_keys,
    ban_due,
    body_refusal,
    contact_uri,
    counts_as_failure,
    domain,
    has_address_host,
    route_refusal,
    split_route_set,
    without_trailing_dot,
)
from kemi.names import (
    AUTH_FAIL_TABLE,
    BAN_TABLE,
    CALLER_HOPS_VAR,
    CALLER_VAR,
    CHALLENGE_QOP_AUTH,
    DS_ANY_SET,
    DS_MATCH_NOPROTO,
    FLT_NATS,
    NAT_TESTS,
    SOURCE_PROFILE,
    VM_FLT_AUTH,
)


class Defences(ScriptBase):
    """What is refused before anything is held, and who the caller is."""

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
