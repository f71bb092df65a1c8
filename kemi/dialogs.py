"""The KEMI script's in-dialog requests: where a caller's and a callee's requests in a
call may go (the peers' Contacts, or a worker), and the replies that move them.
"""

from __future__ import annotations

import KSR  # provided by app_python3; a fake in unit tests

from kemi.base import _pv, _status
from kemi.guards import contact_uri, split_route_set, toward_peer
from kemi.mwi import MwiVerdict
from kemi.names import (
    ANSWER_FROM_WORKER,
    CALLER_HOPS_VAR,
    CALLER_VAR,
    DS_ANY_SET,
    DS_MATCH_NOPROTO,
    EARLY_PEER_VAR,
    HOPS_VAR,
    OFFER_TO_WORKER,
    PEER_VAR,
    VM_FLT_OFFERED,
    WORKER_ROUTE_PARAM,
)
from kemi.presence import Presence


class InDialog(Presence):
    """Requests with a To-tag, and the replies to a phone's INVITE that name its Contact."""

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

    def peer_reply(self) -> int:
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

    def refresh_reply(self) -> int:
        """A 2xx to the caller's re-INVITE or UPDATE: the callee's Contact may have moved."""
        contact = contact_uri(_pv("$ct"))
        if contact is not None and 200 <= _status(_pv("$rs")) < 300:
            KSR.pv.sets(PEER_VAR, contact)
        return 1
