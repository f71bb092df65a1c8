"""A stateful fake of Kamailio's ``KSR`` module, for unit tests of the KEMI script.

In the spirit of sipwise/lua-ngcp-kamailio: the fake holds one SIP request (headers,
body, source address) and the proxy's tables (location, subscriber, usr_preferences,
dispatcher set), answers the KSR functions the script calls the way Kamailio 5.6 does,
and records what the script did (replies, relays with the headers they carried, armed
routes, rtpengine calls, SQL queries, log lines).

Only what the fake implements exists: any other ``KSR.<module>.<function>`` raises an
AttributeError naming it. Every implemented function must exist in the KEMI API file
(tests/data/kamailio/kemi-api-5.6.txt) with the same parameter types; calls are
checked against the annotations (positional ``str``/``int`` only, as app_python3's
argument parsing is), and tests compare the annotations with that file and with the
live ``app_python.api_list`` of the real Kamailio.
"""

from __future__ import annotations

import functools
import inspect
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

API_FILE = Path(__file__).resolve().parents[1] / "data" / "kamailio" / "kemi-api-5.6.txt"

# A signature in the API file's notation: ("str, int", "int").
Signature = tuple[str, str]
Xval = str | int | None

CORE = "core"


# ----- the KEMI API file and the live list -----


def parse_api_file(text: str) -> dict[tuple[str, str], Signature]:
    """``[module]`` sections of ``name(params) -> ret`` lines, keyed by (module, name)."""
    functions: dict[tuple[str, str], Signature] = {}
    module: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        section = re.fullmatch(r"\[(\w+)\]", line.strip())
        if section:
            module = section.group(1)
            continue
        entry = re.fullmatch(r"\s+(\w+)\(([^)]*)\) -> (\w+)", line)
        if entry is None or module is None:
            raise ValueError(f"line {number}: not a KEMI function: {line!r}")
        functions[(module, entry.group(1))] = (entry.group(2), entry.group(3))
    return functions


def parse_api_list(output: str) -> dict[tuple[str, str], Signature]:
    """``kamcmd app_python.api_list`` output; the core functions have an empty module."""
    functions: dict[tuple[str, str], Signature] = {}
    pattern = re.compile(
        r"func: \{\s*ret: (\S+)\s*module: ?(\S*)\s*name: (\S+)\s*params: ([^\n]*)\n"
    )
    for ret, module, name, params in pattern.findall(output):
        functions[(module or CORE, name)] = (params.strip(), ret)
    size = re.search(r"msize: (\d+)", output)
    if size is None or int(size.group(1)) != len(functions):
        raise ValueError(f"api_list: msize {size and size.group(1)} but {len(functions)} found")
    return functions


def load_api() -> dict[tuple[str, str], Signature]:
    return parse_api_file(API_FILE.read_text())


# ----- SIP helpers -----


def uri_of(value: str) -> str:
    """The URI of a name-addr or addr-spec header value (no display name, no params)."""
    if "<" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";", 1)[0].strip()


def uri_user_host(uri: str) -> tuple[str, str]:
    """(user, host) of ``sip:user@host:port;params``; user is "" when absent."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    user, _, hostport = rest.rpartition("@")  # a user part may hold ';' and '?'
    return user, re.split(r"[;?:]", hostport, maxsplit=1)[0]


def _header_param(value: str, name: str) -> str | None:
    tail = value[value.index(">") + 1 :] if ">" in value else value
    for part in tail.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == name:
            return val.strip()
    return None


# POSIX extended regular expressions (Kamailio's regcomp) as Python patterns: the
# character classes are translated; Python-only syntax is refused, since Kamailio would
# read it differently.
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r" \t\r\n\v\f",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}


def posix_regex(pattern: str, *, icase: bool = False) -> re.Pattern[str]:
    if re.search(r"\\[dDwWsSbBAZ0-9]|\(\?|[*+?}]\?", pattern):
        raise ValueError(f"not a POSIX extended regex (Python-only syntax): {pattern!r}")
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    return re.compile(pattern, re.IGNORECASE if icase else 0)


@dataclass(frozen=True)
class Credentials:
    """Digest credentials a request carries: whose, and whether the password is right."""

    user: str  # user@domain
    valid: bool = True


@dataclass
class Request:
    """A SIP request as Kamailio received it."""

    method: str
    ruri: str
    headers: list[tuple[str, str]]
    body: str = ""
    src_ip: str = "192.0.2.10"
    src_port: int = 5060
    credentials: Credentials | None = None
    behind_nat: bool = False
    sane: bool = True
    # tm: an existing transaction this request matches (a CANCEL's INVITE, or this is a
    # retransmission): t_check_trans answers accordingly.
    known_transaction: bool = False

    def header_values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


def sip_request(
    method: str,
    ruri: str,
    *,
    from_: str,
    to: str | None = None,
    call_id: str = "call-1@192.0.2.10",
    headers: Iterable[tuple[str, str]] = (),
    body: str = "",
    content_type: str | None = None,
    to_tag: str | None = None,
    **fields: Any,
) -> Request:
    """A request with Via, From (tagged), To, Call-ID, CSeq, Max-Forwards, Contact."""
    to_value = f"<{to or ruri}>" + (f";tag={to_tag}" if to_tag else "")
    src_ip = fields.get("src_ip", "192.0.2.10")
    lines = [
        ("Via", f"SIP/2.0/UDP {src_ip}:5060;branch=z9hG4bK-{call_id.split('@')[0]};rport"),
        ("From", f"<{from_}>;tag=from-tag-1"),
        ("To", to_value),
        ("Call-ID", call_id),
        ("CSeq", f"1 {method}"),
        ("Max-Forwards", "70"),
        ("Contact", f"<sip:{uri_user_host(from_)[0]}@{src_ip}:5060>"),
        *headers,
    ]
    if body:
        lines.append(("Content-Type", content_type or "application/sdp"))
    lines.append(("Content-Length", str(len(body.encode()))))
    return Request(method, ruri, lines, body, **fields)


SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


# ----- what the script did -----


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    via: str  # "sl", "tm", "auth", "registrar", "siputils"


@dataclass(frozen=True)
class Relay:
    """A t_relay: where the request went and what it carried at that moment."""

    ruri: str
    dst_uri: str | None
    headers: tuple[tuple[str, str], ...]
    body: str
    route_type: str  # "request" or "failure"
    on_reply: str | None
    on_failure: str | None
    fr_timers: tuple[int, int] | None  # (fr_inv, fr) in ms from t_set_fr
    record_route: bool
    rr_params: tuple[str, ...]
    flags: frozenset[int]

    def header_values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class RtpengineCall:
    operation: str  # offer, answer, manage, delete
    flags: str


@dataclass
class Contact:
    uri: str
    methods: frozenset[str] | None = None  # None: every method
    received: str | None = None


@dataclass
class Destination:
    uri: str
    active: bool = True


@dataclass
class _Lump:
    """A header change: applied when the message is sent, invisible to reads before."""

    remove: frozenset[int] = frozenset()  # indexes into the received headers
    add: tuple[str, str] | None = None


@dataclass
class _MessageState:
    """What the script changes on a message; a transaction keeps a copy for failure
    routes (Kamailio clones the request with its lumps at t_relay)."""

    ruri: str
    dst_uri: str | None = None
    flags: set[int] = field(default_factory=set)
    bflags: set[int] = field(default_factory=set)
    avps: dict[str, list[Xval]] = field(default_factory=dict)
    lumps: list[_Lump] = field(default_factory=list)
    record_route: bool = False
    rr_params: list[str] = field(default_factory=list)
    ds_candidates: list[Destination] = field(default_factory=list)
    ds_current: Destination | None = None

    def copy(self) -> _MessageState:
        return replace(
            self,
            flags=set(self.flags),
            bflags=set(self.bflags),
            avps={k: list(v) for k, v in self.avps.items()},
            lumps=list(self.lumps),
            rr_params=list(self.rr_params),
            ds_candidates=list(self.ds_candidates),
        )


@dataclass
class _Transaction:
    state: _MessageState
    on_reply: str | None = None
    on_failure: str | None = None
    fr_timers: tuple[int, int] | None = None
    relayed: bool = False


@dataclass
class _FailureContext:
    status: int
    timed_out: bool
    canceled: bool


# ----- the KSR modules -----


_TYPES: dict[Any, str] = {str: "str", int: "int"}
_RETURNS: dict[Any, str] = {bool: "bool", int: "int", None: "none", Xval: "xval"}


def _checked(module: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Check a call the way app_python3 parses KEMI arguments: positional, typed."""
    params = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
    name = f"KSR.{func.__name__}" if module == CORE else f"KSR.{module}.{func.__name__}"

    @functools.wraps(func)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise TypeError(f"{name}: KEMI functions take no keyword arguments")
        if len(args) != len(params):
            raise TypeError(f"{name}: takes {len(params)} arguments, {len(args)} given")
        for param, arg in zip(params, args, strict=True):
            if not isinstance(arg, param.annotation):
                raise TypeError(
                    f"{name}: argument {param.name} must be {param.annotation.__name__}, "
                    f"not {type(arg).__name__}"
                )
        return func(self, *args)

    return call


class _Module:
    """A KSR module: its public methods are the KEMI functions it offers."""

    module: ClassVar[str]

    def __init_subclass__(cls, module: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.module = module
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(value):
                setattr(cls, name, _checked(module, value))

    def __init__(self, kam: FakeKamailio) -> None:
        self._k = kam

    def __getattr__(self, name: str) -> Any:
        prefix = "KSR" if self.module == CORE else f"KSR.{self.module}"
        raise AttributeError(f"the fake KSR does not implement {prefix}.{name}")

    @classmethod
    def offered(cls) -> dict[str, Signature]:
        """KEMI name -> (params, ret) in the API file's notation."""
        functions: dict[str, Signature] = {}
        for name, value in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(value):
                continue
            sig = inspect.signature(inspect.unwrap(value), eval_str=True)
            params = [_TYPES[p.annotation] for p in list(sig.parameters.values())[1:]]
            functions[name] = (", ".join(params) or "none", _RETURNS[sig.return_annotation])
        return functions


class Pv(_Module, module="pv"):
    def get(self, name: str) -> Xval:
        return self._k._pv_get(name)

    def gete(self, name: str) -> Xval:
        value = self._k._pv_get(name)
        return "" if value is None else value

    def is_null(self, name: str) -> bool:
        return self._k._pv_get(name) is None

    def sets(self, name: str, value: str) -> bool:
        self._k._pv_set(name, value)
        return True

    def seti(self, name: str, value: int) -> bool:
        self._k._pv_set(name, value)
        return True

    def unset(self, name: str) -> bool:
        self._k._pv_set(name, None)
        return True


class Hdr(_Module, module="hdr"):
    def append(self, text: str) -> int:
        self._k._add_header(text)
        return 1

    def remove(self, name: str) -> int:
        return self._k._remove_headers(lambda n: n.lower() == name.lower())

    def is_present(self, name: str) -> int:
        return 1 if self._k.request.header_values(name) else -1

    def get(self, name: str) -> Xval:
        return self._k.request.header(name)


class Textops(_Module, module="textops"):
    def remove_hf(self, name: str) -> int:
        return self._k._remove_headers(lambda n: n.lower() == name.lower())

    def remove_hf_re(self, pattern: str) -> int:
        # Case-sensitive: the stricter reading, so a script never relies on more.
        regex = posix_regex(pattern)
        return self._k._remove_headers(lambda n: regex.search(n) is not None)

    def is_present_hf(self, name: str) -> int:
        return 1 if self._k.request.header_values(name) else -1

    def has_body_type(self, content_type: str) -> int:
        message = self._k._reply if self._k._reply is not None else self._k.request
        if not message.body:
            return -1
        actual = (message.header("Content-Type") or "").split(";", 1)[0].strip().lower()
        return 1 if actual == content_type.lower() else -1


class Sl(_Module, module="sl"):
    def sl_send_reply(self, status: int, reason: str) -> int:
        return self._k._reply_with(status, reason, "sl")

    def send_reply(self, status: int, reason: str) -> int:
        return self._k._reply_with(status, reason, "sl")

    def sl_reply_error(self) -> int:
        return self._k._reply_with(500, "Server Internal Error", "sl")


class Tm(_Module, module="tm"):
    def t_check_trans(self) -> int:
        request = self._k.request
        if request.method in ("CANCEL", "ACK"):
            return 1 if request.known_transaction else -1
        return 0 if request.known_transaction else -1  # 0: retransmission, absorbed

    def t_newtran(self) -> int:
        if self._k.request.known_transaction:
            return 0
        self._k._transaction()
        return 1

    def t_relay(self) -> int:
        return self._k._relay()

    def t_send_reply(self, status: int, reason: str) -> int:
        self._k._transaction()
        return self._k._reply_with(status, reason, "tm")

    def t_reply(self, status: int, reason: str) -> int:
        return self.t_send_reply(status, reason)

    def t_on_reply(self, route: str) -> int:
        self._k._transaction().on_reply = route
        return 1

    def t_on_failure(self, route: str) -> int:
        self._k._transaction().on_failure = route
        return 1

    def t_set_fr(self, fr_inv: int, fr: int) -> int:
        self._k._transaction().fr_timers = (fr_inv, fr)
        return 1

    def t_is_canceled(self) -> int:
        return 1 if self._k._failure_context().canceled else -1

    def t_get_status_code(self) -> int:
        return self._k._failure_context().status

    def t_branch_timeout(self) -> int:
        return 1 if self._k._failure_context().timed_out else -1

    def t_check_status(self, pattern: str) -> int:
        status = str(self._k._failure_context().status)
        return 1 if posix_regex(pattern).fullmatch(status) else -1


class Registrar(_Module, module="registrar"):
    def save(self, table: str, flags: int) -> int:
        kam = self._k
        kam._usrloc(table)
        if kam.registrar_error:
            return -1
        to = kam.request.header("To") or ""
        user, host = uri_user_host(uri_of(to))
        aor = f"{user}@{host}"
        expires = kam.request.header("Expires")
        contacts = kam.location.setdefault(aor, [])
        for value in kam.request.header_values("Contact"):
            if value.strip() == "*":
                contacts.clear()
                continue
            uri = uri_of(value)
            contacts[:] = [c for c in contacts if c.uri != uri]
            if (_header_param(value, "expires") or expires or "3600") != "0":
                received = f"sip:{kam.request.src_ip}:{kam.request.src_port}"
                nat = 6 in kam._state.bflags or kam.request.behind_nat
                contacts.append(Contact(uri, received=received if nat else None))
        if not contacts:
            del kam.location[aor]
        kam._reply_with(200, "OK", "registrar")
        return 1

    def lookup(self, table: str) -> int:
        kam = self._k
        kam._usrloc(table)
        if kam.registrar_error:
            return -3
        user, host = uri_user_host(kam._state.ruri)
        contacts = kam.location.get(f"{user}@{host}", [])
        if not contacts:
            return -1
        allowed = [c for c in contacts if c.methods is None or kam.request.method in c.methods]
        if not allowed:
            return -2
        kam._state.ruri = allowed[0].uri
        kam._state.dst_uri = allowed[0].received
        kam.branches = [c.uri for c in allowed[1:]]
        return 1


class Auth(_Module, module="auth"):
    def auth_challenge(self, realm: str, flags: int) -> int:
        if self._k.request.method == "REGISTER":
            self._k._reply_with(401, "Unauthorized", "auth")
        else:
            self._k._reply_with(407, "Proxy Authentication Required", "auth")
        self._k.challenges.append(realm)
        return 1

    def consume_credentials(self) -> int:
        if self._k.request.credentials is None:
            return -1
        self._k._remove_headers(lambda n: n.lower() in ("authorization", "proxy-authorization"))
        return 1

    def has_credentials(self, realm: str) -> int:
        return 1 if self._k.request.credentials is not None else -1


# auth_db.auth_check return codes (auth module's auth_result_t)
AUTH_OK, AUTH_INVALID_PASSWORD, AUTH_USER_UNKNOWN, AUTH_NO_CREDENTIALS = 1, -2, -3, -5
AUTH_USER_MISMATCH = -8


class AuthDb(_Module, module="auth_db"):
    def auth_check(self, realm: str, table: str, flags: int) -> int:
        kam = self._k
        kam._table(table)
        credentials = kam.request.credentials
        if credentials is None:
            return AUTH_NO_CREDENTIALS
        if credentials.user.partition("@")[2] != realm:
            return AUTH_NO_CREDENTIALS  # credentials for another realm do not count
        if credentials.user not in kam.subscribers:
            return AUTH_USER_UNKNOWN
        if not credentials.valid:
            return AUTH_INVALID_PASSWORD
        if flags & 1:
            # REGISTER: the To user; other requests: the From user must be the auth user.
            header = "To" if kam.request.method == "REGISTER" else "From"
            user, host = uri_user_host(uri_of(kam.request.header(header) or ""))
            if f"{user}@{host}" != credentials.user:
                return AUTH_USER_MISMATCH
        return AUTH_OK

    def is_subscriber(self, uri: str, table: str, flags: int) -> int:
        self._k._table(table)
        user, host = uri_user_host(uri)
        return 1 if f"{user}@{host}" in self._k.subscribers else -1


class Sqlops(_Module, module="sqlops"):
    def sql_query(self, connection: str, query: str, result: str) -> int:
        return self._k._sql_query(connection, query, result)

    def sql_num_rows(self, result: str) -> int:
        return len(self._k._sql_result(result))

    def sql_result_get(self, result: str, row: int, column: int) -> Xval:
        rows = self._k._sql_result(result)
        if not (0 <= row < len(rows) and 0 <= column < len(rows[row])):
            raise IndexError(f"sql_result_get: no row {row} column {column} in {result!r}")
        value: Xval = rows[row][column]
        return value

    def sql_result_free(self, result: str) -> int:
        self._k.sql_results.pop(result, None)
        return 1


class Dispatcher(_Module, module="dispatcher"):
    def ds_select_dst(self, set_id: int, algorithm: int) -> int:
        kam = self._k
        active = [d for d in kam.dispatcher.get(set_id, []) if d.active]
        if not active:
            return -1
        if algorithm == 4:  # round robin
            start = kam._ds_counter.get(set_id, 0) % len(active)
            kam._ds_counter[set_id] = start + 1
            active = active[start:] + active[:start]
        elif algorithm != 8:  # 8: by priority, the list order here
            raise NotImplementedError(f"fake dispatcher: algorithm {algorithm}")
        kam._state.ds_current, *kam._state.ds_candidates = active
        kam._state.dst_uri = active[0].uri
        return 1

    def ds_next_dst(self) -> int:
        state = self._k._state
        if not state.ds_candidates:
            return -1
        state.ds_current = state.ds_candidates.pop(0)
        state.dst_uri = state.ds_current.uri
        return 1

    def ds_mark_dst_state(self, flags: str) -> int:
        current = self._k._state.ds_current
        if current is None or not set(flags) <= set("aipdtAIPDT"):
            return -1
        current.active = not any(c in flags.lower() for c in "id")
        self._k.ds_marks.append((current.uri, flags))
        return 1


class Rr(_Module, module="rr"):
    def loose_route(self) -> int:
        kam = self._k
        routes = kam.request.header_values("Route")
        if not routes:
            return -1
        first = routes[0].split(",")[0]
        _, host = uri_user_host(uri_of(first))
        if host not in kam.myself:
            return -1
        kam._route_params = uri_of(first).partition(";")[2]
        kam._remove_headers(lambda n: n.lower() == "route", first_only=True)
        return 1

    def record_route(self) -> int:
        self._k._state.record_route = True
        return 1

    def add_rr_param(self, param: str) -> int:
        if not param.startswith(";"):
            raise ValueError(f"add_rr_param: {param!r} must start with ';'")
        self._k._state.rr_params.append(param)
        return 1

    def check_route_param(self, pattern: str) -> int:
        params = self._k._route_params
        if params is None:
            return -1
        return 1 if posix_regex(pattern).search(params) else -1


class Siputils(_Module, module="siputils"):
    def has_totag(self) -> int:
        to = self._k.request.header("To") or ""
        return 1 if _header_param(to, "tag") else -1

    def is_first_hop(self) -> int:
        vias = [v for value in self._k.request.header_values("Via") for v in value.split(",")]
        return 1 if len(vias) == 1 else -1

    def options_reply(self) -> int:
        kam = self._k
        if kam.request.method != "OPTIONS" or uri_user_host(kam._state.ruri)[0]:
            return -1
        return kam._reply_with(200, "OK", "siputils")


class Maxfwd(_Module, module="maxfwd"):
    def process_maxfwd(self, limit: int) -> int:
        value = self._k.request.header("Max-Forwards")
        if value is None:
            self._k._add_header(f"Max-Forwards: {limit}\r\n")
            return 2
        if int(value) <= 0:
            return -1
        return 1


class Sanity(_Module, module="sanity"):
    def sanity_check_defaults(self) -> int:
        return 1 if self._k.request.sane else -1


class Nathelper(_Module, module="nathelper"):
    def nat_uac_test(self, flags: int) -> int:
        self._k.nat_calls.append(f"nat_uac_test({flags})")
        return 1 if self._k.request.behind_nat else -1

    def fix_nated_register(self) -> int:
        self._k.nat_calls.append("fix_nated_register")
        return 1

    def fix_nated_contact(self) -> int:
        self._k.nat_calls.append("fix_nated_contact")
        return 1

    def set_contact_alias(self) -> int:
        self._k.nat_calls.append("set_contact_alias")
        return 1

    def handle_ruri_alias(self) -> int:
        self._k.nat_calls.append("handle_ruri_alias")
        return 1


class Rtpengine(_Module, module="rtpengine"):
    def _call(self, operation: str, flags: str) -> int:
        self._k.rtpengine.append(RtpengineCall(operation, flags))
        return 1 if self._k.rtpengine_available else -1

    def rtpengine_offer(self, flags: str) -> int:
        return self._call("offer", flags)

    def rtpengine_offer0(self) -> int:
        return self._call("offer", "")

    def rtpengine_answer(self, flags: str) -> int:
        return self._call("answer", flags)

    def rtpengine_answer0(self) -> int:
        return self._call("answer", "")

    def rtpengine_manage(self, flags: str) -> int:
        return self._call("manage", flags)

    def rtpengine_manage0(self) -> int:
        return self._call("manage", "")

    def rtpengine_delete(self, flags: str) -> int:
        return self._call("delete", flags)

    def rtpengine_delete0(self) -> int:
        return self._call("delete", "")


# is_method_in letters (core/kemi.c)
METHOD_LETTERS = {
    "I": "INVITE",
    "A": "ACK",
    "B": "BYE",
    "C": "CANCEL",
    "M": "MESSAGE",
    "R": "REGISTER",
    "O": "OPTIONS",
    "S": "SUBSCRIBE",
    "N": "NOTIFY",
    "P": "PUBLISH",
    "F": "INFO",
    "U": "UPDATE",
}


class FakeKSR(_Module, module=CORE):
    """What ``import KSR`` gives the script: core functions and the module objects."""

    def __init__(self, kam: FakeKamailio) -> None:
        super().__init__(kam)
        self.pv = Pv(kam)
        self.hdr = Hdr(kam)
        self.textops = Textops(kam)
        self.sl = Sl(kam)
        self.tm = Tm(kam)
        self.registrar = Registrar(kam)
        self.auth = Auth(kam)
        self.auth_db = AuthDb(kam)
        self.sqlops = Sqlops(kam)
        self.dispatcher = Dispatcher(kam)
        self.rr = Rr(kam)
        self.siputils = Siputils(kam)
        self.maxfwd = Maxfwd(kam)
        self.sanity = Sanity(kam)
        self.nathelper = Nathelper(kam)
        self.rtpengine = Rtpengine(kam)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the fake KSR does not implement KSR.{name}")

    # logging
    def info(self, text: str) -> None:
        self._k.logs.append(("info", text))

    def err(self, text: str) -> None:
        self._k.logs.append(("err", text))

    def warn(self, text: str) -> None:
        self._k.logs.append(("warn", text))

    def notice(self, text: str) -> None:
        self._k.logs.append(("notice", text))

    def dbg(self, text: str) -> None:
        self._k.logs.append(("dbg", text))

    # methods
    def _is(self, method: str) -> bool:
        return self._k.request.method == method

    def is_method(self, method: str) -> bool:
        return self._k.request.method == method.upper()

    def is_method_in(self, letters: str) -> bool:
        unknown = set(letters.upper()) - set(METHOD_LETTERS)
        if unknown:
            raise ValueError(f"is_method_in: the fake knows no method letter {sorted(unknown)}")
        return self._k.request.method in {METHOD_LETTERS[c] for c in letters.upper()}

    def is_INVITE(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("INVITE")

    def is_ACK(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("ACK")

    def is_BYE(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("BYE")

    def is_CANCEL(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("CANCEL")

    def is_REGISTER(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("REGISTER")

    def is_OPTIONS(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("OPTIONS")

    def is_SUBSCRIBE(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("SUBSCRIBE")

    def is_PUBLISH(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("PUBLISH")

    def is_NOTIFY(self) -> bool:  # noqa: N802 - KSR's names
        return self._is("NOTIFY")

    # myself
    def is_myself(self, uri: str) -> bool:
        return uri_user_host(uri)[1] in self._k.myself

    def is_myself_ruri(self) -> bool:
        return uri_user_host(self._k._state.ruri)[1] in self._k.myself

    def is_myself_furi(self) -> bool:
        return uri_user_host(uri_of(self._k.request.header("From") or ""))[1] in self._k.myself

    def is_myself_turi(self) -> bool:
        return uri_user_host(uri_of(self._k.request.header("To") or ""))[1] in self._k.myself

    # flags
    def setflag(self, flag: int) -> bool:
        self._k._state.flags.add(_flag(flag))
        return True

    def resetflag(self, flag: int) -> bool:
        self._k._state.flags.discard(_flag(flag))
        return True

    def isflagset(self, flag: int) -> bool:
        return _flag(flag) in self._k._state.flags

    def setbflag(self, flag: int) -> bool:
        self._k._state.bflags.add(_flag(flag))
        return True

    def resetbflag(self, flag: int) -> bool:
        self._k._state.bflags.discard(_flag(flag))
        return True

    def isbflagset(self, flag: int) -> bool:
        return _flag(flag) in self._k._state.bflags

    # request URI and destination
    def seturi(self, uri: str) -> bool:
        self._k._state.ruri = uri
        return True

    def setuser(self, user: str) -> bool:
        _, host = uri_user_host(self._k._state.ruri)
        self._k._state.ruri = f"sip:{user}@{host}"
        return True

    def setdsturi(self, uri: str) -> bool:
        self._k._state.dst_uri = uri
        return True

    def resetdsturi(self) -> bool:
        self._k._state.dst_uri = None
        return True

    def isdsturiset(self) -> bool:
        return self._k._state.dst_uri is not None

    def force_rport(self) -> bool:
        self._k.nat_calls.append("force_rport")
        return True


def _flag(flag: int) -> int:
    if not 0 <= flag <= 31:
        raise ValueError(f"flag {flag} is outside 0..31")
    return flag


def offered_functions() -> dict[tuple[str, str], Signature]:
    """Every (module, function) the fake implements, with its signature."""
    return {
        (cls.module, name): signature
        for cls in _Module.__subclasses__()
        for name, signature in cls.offered().items()
    }


# ----- the world the script runs in -----


USR_PREFERENCES_SCHEMA = """
CREATE TABLE usr_preferences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid VARCHAR(64) NOT NULL DEFAULT '',
    username VARCHAR(255) NOT NULL DEFAULT '0',
    domain VARCHAR(64) NOT NULL DEFAULT '',
    attribute VARCHAR(32) NOT NULL DEFAULT '',
    type INTEGER NOT NULL DEFAULT 0,
    value VARCHAR(128) NOT NULL DEFAULT '',
    last_modified TIMESTAMP NOT NULL DEFAULT '2000-01-01 00:00:01'
)
"""


class FakeKamailio:
    """The proxy's world: tables, the current message, and the record of actions.

    ``receive(request)`` starts a message (request route); ``failure(...)`` and
    ``reply(...)`` switch to the failure route / onreply route of the last relay.
    """

    def __init__(
        self,
        *,
        defines: Mapping[str, str] | None = None,
        myself: Iterable[str] = ("lab.example", "127.0.0.1"),
        sql_connections: Iterable[str] = ("vm",),
    ) -> None:
        self.defines: dict[str, str] = dict(defines or {})
        self.myself = set(myself)
        self.subscribers: dict[str, str] = {}  # user@domain -> password
        self.location: dict[str, list[Contact]] = {}  # user@domain -> contacts
        self.registrar_error = False
        self.dispatcher: dict[int, list[Destination]] = {}
        self.rtpengine_available = True
        self.relay_result = 1
        self.sql_connections = set(sql_connections)
        self.db = sqlite3.connect(":memory:")
        self.db.execute(USR_PREFERENCES_SCHEMA)
        self._ds_counter: dict[int, int] = {}
        self.ksr = FakeKSR(self)
        # records over the fake's life
        self.logs: list[tuple[str, str]] = []
        self.sql_queries: list[str] = []
        self.ds_marks: list[tuple[str, str]] = []
        self.receive(sip_request("OPTIONS", "sip:127.0.0.1", from_="sip:nobody@127.0.0.1"))

    # ----- set-up -----

    def add_subscriber(self, user: str, password: str) -> None:
        self.subscribers[user] = password

    def register(self, user: str, *contacts: Contact) -> None:
        self.location[user] = list(contacts)

    def add_preference(self, user: str, attribute: str, value: str, *, type_: int = 2) -> None:
        username, domain = user.split("@")
        self.db.execute(
            "INSERT INTO usr_preferences (username, domain, attribute, type, value) "
            "VALUES (?, ?, ?, ?, ?)",
            (username, domain, attribute, type_, value),
        )

    def add_worker(self, uri: str, set_id: int = 1, *, active: bool = True) -> None:
        self.dispatcher.setdefault(set_id, []).append(Destination(uri, active))

    # ----- messages -----

    def receive(self, request: Request) -> None:
        """A new request: per-message state and records start empty."""
        self.request = request
        self._state = _MessageState(ruri=request.ruri)
        self._tx: _Transaction | None = None
        self._failure: _FailureContext | None = None
        self._reply: Request | None = None
        self._route_params: str | None = None
        self.route_type = "request"
        self.replies: list[Reply] = []
        self.relays: list[Relay] = []
        self.rtpengine: list[RtpengineCall] = []
        self.challenges: list[str] = []
        self.nat_calls: list[str] = []
        self.branches: list[str] = []
        self.sql_results: dict[str, list[tuple[Xval, ...]]] = {}

    def failure(self, status: int, *, timed_out: bool = False, canceled: bool = False) -> str:
        """The last relay's branches failed: enter its failure route (returns its name)
        with the request as it was relayed (R-URI, flags, AVPs, header lumps)."""
        tx = self._tx
        if tx is None or not tx.relayed or tx.on_failure is None:
            raise AssertionError("no relayed transaction with a failure route armed")
        name = tx.on_failure
        self._state = tx.state.copy()
        tx.on_failure = None  # a failure route arms the next one itself
        tx.on_reply = None
        tx.relayed = False
        self._failure = _FailureContext(status, timed_out, canceled)
        self.route_type = "failure"
        self.replies, self.relays, self.rtpengine = [], [], []
        return name

    def reply(self, status: int, *, body: str = "", content_type: str = "application/sdp") -> str:
        """A reply to the last relay arrives: enter its onreply route (returns its name)."""
        if self._tx is None or self._tx.on_reply is None:
            raise AssertionError("no onreply route armed")
        headers = [("Content-Type", content_type)] if body else []
        self._reply = Request(str(status), "", headers, body)
        self._state = self._tx.state.copy()  # the transaction's flags and AVPs
        self.route_type = "reply"
        self.rtpengine = []
        return self._tx.on_reply

    # ----- views for tests -----

    @property
    def ruri(self) -> str:
        return self._state.ruri

    @property
    def dst_uri(self) -> str | None:
        return self._state.dst_uri

    @property
    def flags(self) -> frozenset[int]:
        return frozenset(self._state.flags)

    def current_headers(self) -> list[tuple[str, str]]:
        """The headers the request would be sent with now (lumps applied)."""
        removed: set[int] = set()
        added: list[tuple[str, str]] = []
        for lump in self._state.lumps:
            removed |= lump.remove
            if lump.add is not None:
                added.append(lump.add)
        kept = [h for i, h in enumerate(self.request.headers) if i not in removed]
        return kept + added

    def armed(self) -> Iterator[str]:
        """Route names the script armed (for checking they exist)."""
        if self._tx is not None:
            yield from (r for r in (self._tx.on_reply, self._tx.on_failure) if r)
        for relay in self.relays:
            yield from (r for r in (relay.on_reply, relay.on_failure) if r)

    # ----- internals used by the modules -----

    def _pv_get(self, name: str) -> Xval:
        state, request = self._state, self.request
        avp = re.fullmatch(r"\$avp\((\w+)\)", name)
        if avp:
            stack = state.avps.get(avp.group(1))
            return stack[-1] if stack else None
        define = re.fullmatch(r"\$def\((\w+)\)", name)
        if define:
            return self.defines.get(define.group(1))
        header = re.fullmatch(r"\$hdr\(([\w-]+)\)", name)
        if header:
            return request.header(header.group(1))
        from_uri = uri_of(request.header("From") or "")
        to_uri = uri_of(request.header("To") or "")
        getters: dict[str, Callable[[], Xval]] = {
            "$rm": lambda: request.method,
            "$ru": lambda: state.ruri,
            "$rU": lambda: uri_user_host(state.ruri)[0] or None,
            "$rd": lambda: uri_user_host(state.ruri)[1],
            "$fu": lambda: from_uri,
            "$fU": lambda: uri_user_host(from_uri)[0] or None,
            "$fd": lambda: uri_user_host(from_uri)[1],
            "$tu": lambda: to_uri,
            "$tU": lambda: uri_user_host(to_uri)[0] or None,
            "$td": lambda: uri_user_host(to_uri)[1],
            "$ci": lambda: request.header("Call-ID"),
            "$si": lambda: request.src_ip,
            "$sp": lambda: request.src_port,
            "$du": lambda: state.dst_uri,
        }
        if name not in getters:
            raise KeyError(f"the fake KSR does not implement the pv {name}")
        return getters[name]()

    def _pv_set(self, name: str, value: Xval) -> None:
        state = self._state
        avp = re.fullmatch(r"\$avp\((\w+)\)", name)
        if avp:
            if value is None:
                state.avps.pop(avp.group(1), None)
            else:
                state.avps.setdefault(avp.group(1), []).append(value)
        elif name == "$du":
            state.dst_uri = None if value is None else str(value)
        elif name == "$ru" and isinstance(value, str):
            state.ruri = value
        elif name == "$rU" and isinstance(value, str):
            self.ksr.setuser(value)
        else:
            raise KeyError(f"the fake KSR cannot assign {value!r} to {name}")

    def _add_header(self, text: str) -> None:
        if not text.endswith("\r\n") or "\r\n" in text[:-2] or ":" not in text:
            raise ValueError(f"a header to add must be one 'Name: value\\r\\n' line: {text!r}")
        name, _, value = text[:-2].partition(":")
        self._state.lumps.append(_Lump(add=(name.strip(), value.strip())))

    def _remove_headers(self, matches: Callable[[str], bool], *, first_only: bool = False) -> int:
        indexes = [i for i, (n, _) in enumerate(self.request.headers) if matches(n)]
        if first_only:
            indexes = indexes[:1]
        if not indexes:
            return -1
        self._state.lumps.append(_Lump(remove=frozenset(indexes)))
        return len(indexes)

    def _reply_with(self, status: int, reason: str, via: str) -> int:
        if self.request.method == "ACK":
            raise AssertionError("a reply to an ACK")
        self.replies.append(Reply(status, reason, via))
        return 1

    def _transaction(self) -> _Transaction:
        if self._tx is None:
            self._tx = _Transaction(self._state)
        return self._tx

    def _relay(self) -> int:
        tx = self._transaction()
        state = self._state
        self.relays.append(
            Relay(
                ruri=state.ruri,
                dst_uri=state.dst_uri,
                headers=tuple(self.current_headers()),
                body=self.request.body,
                route_type=self.route_type,
                on_reply=tx.on_reply,
                on_failure=tx.on_failure,
                fr_timers=tx.fr_timers,
                record_route=state.record_route,
                rr_params=tuple(state.rr_params),
                flags=frozenset(state.flags),
            )
        )
        tx.state = state.copy()
        tx.relayed = True
        return self.relay_result

    def _failure_context(self) -> _FailureContext:
        if self._failure is None:
            raise AssertionError("a failure-route function outside a failure route")
        return self._failure

    def _usrloc(self, table: str) -> None:
        if table != "location":
            raise ValueError(f"usrloc domain [{table}] not found (only 'location' is preloaded)")

    def _table(self, table: str) -> None:
        if table != "subscriber":
            raise ValueError(f"the fake has no table {table!r}")

    def _sql_query(self, connection: str, query: str, result: str) -> int:
        if connection not in self.sql_connections:
            raise ValueError(f"sqlops: no connection {connection!r} in the cfg")
        self.sql_queries.append(query)
        try:
            rows = self.db.execute(query).fetchall()
        except sqlite3.Error as exc:
            self.logs.append(("err", f"sqlops: {exc}"))
            return -1
        self.sql_results[result] = [tuple(row) for row in rows]
        return 0  # sqlops' KEMI sql_query answers 0 on success

    def _sql_result(self, result: str) -> list[tuple[Xval, ...]]:
        if result not in self.sql_results:
            raise KeyError(f"sqlops: no result {result!r} (freed, or never queried)")
        return self.sql_results[result]
