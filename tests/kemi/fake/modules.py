"""The KSR modules of message handling: pv, hdr, textops, sl, tm, tmx, rr, siputils,
maxfwd, sanity, nathelper, rtpengine."""

from __future__ import annotations

import re

from tests.kemi.fake.api import Xval, _Module
from tests.kemi.fake.sip import _header_param, posix_regex, uri_of, uri_user_host
from tests.kemi.fake.state import RtpengineCall


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
        self._k._created_transaction()
        return 1

    def t_relay(self) -> int:
        return self._k._relay()

    def t_send_reply(self, status: int, reason: str) -> int:
        self._k._created_transaction()
        return self._k._reply_with(status, reason, "tm")

    def t_reply(self, status: int, reason: str) -> int:
        return self.t_send_reply(status, reason)

    def t_on_branch(self, route: str) -> int:
        self._k._transaction().on_branch = route  # for the next t_relay only
        return 1

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


class Tmx(_Module, module="tmx"):
    def t_precheck_trans(self) -> int:
        # 1: another process is still routing this request (a retransmission of it).
        request = self._k.request
        return 1 if request.method not in ("ACK", "CANCEL") and request.in_process else -1


class Rr(_Module, module="rr"):
    def loose_route(self) -> int:
        kam = self._k
        routes = kam.request.header_values("Route")
        if not routes:
            return -1
        first = routes[0].split(",")[0]
        if not kam._is_myself(uri_of(first)):
            return -1
        kam._route_params = uri_of(first).partition(";")[2]
        kam._remove_headers(lambda n: n.lower() == "route", first_only=True)
        rest = [part for value in routes[1:] for part in value.split(",")]
        rest = routes[0].split(",")[1:] + rest
        if rest:  # a further (loose) Route is the next hop
            kam._state.dst_uri = uri_of(rest[0].strip())
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
        """An ``;alias=ip~port~proto`` of the R-URI becomes $du and leaves the R-URI."""
        kam = self._k
        kam.nat_calls.append("handle_ruri_alias")
        ruri = kam._state.ruri
        match = re.search(r";alias=([^;?>~]+)~(\d+)~(\d)", ruri)
        if match is None:
            return 1
        host, port, proto = match.groups()
        transport = {"1": "", "2": ";transport=tcp", "3": ";transport=tls"}.get(proto, "")
        kam._state.dst_uri = f"sip:{host}:{port}{transport}"
        kam._state.ruri = ruri[: match.start()] + ruri[match.end() :]
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
