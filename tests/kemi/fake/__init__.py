"""A stateful fake of Kamailio's ``KSR`` module, for unit tests of the KEMI script.

In the spirit of sipwise/lua-ngcp-kamailio: the fake holds one SIP request (headers,
body, source address) and the proxy's tables (location, subscriber, usr_preferences,
dispatcher set), answers the KSR functions the script calls the way Kamailio 5.6 does,
and records what the script did (replies, relays with the headers they carried, armed
routes, rtpengine calls, SQL queries, log lines). presence keeps its publications and
subscriptions and records the NOTIFYs it sent.

tm is modelled as Kamailio runs it: ``t_on_branch`` arms a branch route for the next
t_relay, which runs it for each new branch on that branch's own copy of the request
(header lumps, rr params, rtpengine offer; ``set_drop`` keeps the branch from being
sent); a failure route starts from the request tm kept (the request route's changes,
none of an earlier failure route's), with the transaction's flags and AVPs.

Only what the fake implements exists: any other ``KSR.<module>.<function>`` raises an
AttributeError naming it. Every implemented function must exist in the KEMI API file
(tests/data/kamailio/kemi-api-5.6.txt) with the same parameter types; calls are
checked against the annotations (positional ``str``/``int`` only, as app_python3's
argument parsing is), and tests compare the annotations with that file and with the
live ``app_python.api_list`` of the real Kamailio.

Layout: ``api`` (API file, live list, call checking), ``sip`` (requests and helpers),
``state`` (records and message/transaction state), ``modules``, ``tables`` and
``presence`` and ``guards`` (the KSR modules), ``ksr`` (core functions), ``world`` (FakeKamailio).
"""

from tests.kemi.fake.api import (
    API_FILE,
    CORE,
    Signature,
    Xval,
    load_api,
    parse_api_file,
    parse_api_list,
)
from tests.kemi.fake.guards import Dialog
from tests.kemi.fake.ksr import METHOD_LETTERS, FakeKSR, offered_functions
from tests.kemi.fake.presence import (
    ACTIVE,
    REFRESH_NOTIFY,
    REFRESH_RULES,
    TERMINATED,
    Notify,
    PresenceState,
    Publication,
    Subscription,
)
from tests.kemi.fake.sip import (
    SDP,
    Credentials,
    Request,
    posix_regex,
    sip_request,
    uri_host_port,
    uri_of,
    uri_user_host,
)
from tests.kemi.fake.state import Contact, Destination, Relay, Reply, RtpengineCall
from tests.kemi.fake.tables import (
    AUTH_INVALID_PASSWORD,
    AUTH_NO_CREDENTIALS,
    AUTH_NONCE_REUSED,
    AUTH_OK,
    AUTH_USER_MISMATCH,
    AUTH_USER_UNKNOWN,
)
from tests.kemi.fake.world import USR_PREFERENCES_SCHEMA, FakeKamailio

__all__ = [
    "ACTIVE",
    "API_FILE",
    "AUTH_INVALID_PASSWORD",
    "AUTH_NONCE_REUSED",
    "AUTH_NO_CREDENTIALS",
    "AUTH_OK",
    "AUTH_USER_MISMATCH",
    "AUTH_USER_UNKNOWN",
    "CORE",
    "METHOD_LETTERS",
    "REFRESH_NOTIFY",
    "REFRESH_RULES",
    "SDP",
    "TERMINATED",
    "USR_PREFERENCES_SCHEMA",
    "Contact",
    "Credentials",
    "Destination",
    "Dialog",
    "FakeKSR",
    "FakeKamailio",
    "Notify",
    "PresenceState",
    "Publication",
    "Relay",
    "Reply",
    "Request",
    "RtpengineCall",
    "Signature",
    "Subscription",
    "Xval",
    "load_api",
    "offered_functions",
    "parse_api_file",
    "parse_api_list",
    "posix_regex",
    "sip_request",
    "uri_host_port",
    "uri_of",
    "uri_user_host",
]
