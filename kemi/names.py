"""The KEMI script's names for Kamailio's magic values, flags and variables.

The flags are kamailio.cfg's defines of the same name, which the native routes
(kamailio-cfg/native/) use too. No KSR here: the tests import these directly.
"""

from __future__ import annotations

# Kamailio's magic values, named.
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
