"""The home proxy's routing script for Kamailio's app_python3 (KEMI).

kamailio.cfg loads this file with ``modparam("app_python3", "load", ...)`` and
``cfgengine "python"``. Each ``ksr_*`` method is one cfg route; the steps of a route group
are kemi.defences, kemi.presence, kemi.dialogs and kemi.workers (one class each, each
inheriting the one before, so a step may call an earlier group's; HomeProxy inherits
the last), and every decision (which app, which profile, which P-App-Param,
voicemail or not) is a pure function in kemi.routing / kemi.app_param / kemi.settings.
Runs on Debian's python3 inside Kamailio: standard library only.
"""

from __future__ import annotations

import os
import sys

# Kamailio runs this file as a script: the directory above kemi/ makes the package
# importable wherever it is installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import KSR  # provided by app_python3; a fake in unit tests

from kemi.app_param import CLIENT_HEADER_PATTERN
from kemi.base import _define, _pv
from kemi.guards import without_trailing_dot
from kemi.mwi import relayed_notify_refused
from kemi.names import (
    DEFINE_ANTIFLOOD,
    DEFINE_AUTH,
    DEFINE_MWI,
    DEFINE_MWI_REFRESH_ON_REGISTER,
    DEFINE_RTPENGINE,
    DEFINE_VOICEMAIL,
)
from kemi.settings import load_settings
from kemi.workers import ToWorkers


def mod_init() -> HomeProxy:
    """Called once by app_python3; the object's methods are the routes."""
    return HomeProxy()


class HomeProxy(ToWorkers):
    def __init__(self) -> None:
        self.auth = _define(DEFINE_AUTH) is not None
        self.voicemail = _define(DEFINE_VOICEMAIL) is not None
        self.mwi = _define(DEFINE_MWI) is not None  # kamailio.cfg: implies WITH_VOICEMAIL
        self.antiflood = _define(DEFINE_ANTIFLOOD) is not None
        refresh = _define(DEFINE_MWI_REFRESH_ON_REGISTER)
        self.mwi_refresh_on_register = self.mwi and refresh is not None and refresh.strip() != "0"
        self.settings = load_settings(_define, rtpengine=_define(DEFINE_RTPENGINE) is not None)
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

    # ----- branch, reply and failure routes -----

    def ksr_branch_worker(self, msg: object) -> int:
        return self.worker_branch()

    def ksr_reply_route(self, msg: object) -> int:
        """Every reply passes here (app_python3 calls it whether or not it is set)."""
        return 1

    def ksr_onsend_route(self, msg: object) -> int:
        """Every message sent passes here (app_python3 looks it up unconditionally)."""
        return 1

    def ksr_onreply_peer(self, msg: object) -> int:
        return self.peer_reply()

    def ksr_onreply_refresh(self, msg: object) -> int:
        return self.refresh_reply()

    def ksr_onreply_worker(self, msg: object) -> int:
        return self.worker_reply()

    def ksr_failure_phone(self, msg: object) -> int:
        return self.phone_failed()

    def ksr_failure_worker(self, msg: object) -> int:
        return self.worker_failed()
