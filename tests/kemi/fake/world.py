"""The proxy's world: tables, the current message, transactions and branches, and the
record of what the script did."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tests.kemi.fake.api import Xval
from tests.kemi.fake.guards import HTABLES, Dialog
from tests.kemi.fake.ksr import FakeKSR
from tests.kemi.fake.presence import PresenceState
from tests.kemi.fake.sip import (
    Request,
    _header_param,
    sip_request,
    uri_host_port,
    uri_of,
    uri_user_host,
)
from tests.kemi.fake.state import (
    Contact,
    Destination,
    Relay,
    Reply,
    RtpengineCall,
    _FailureContext,
    _Lump,
    _MessageState,
    _Transaction,
)

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
    ``reply(...)`` switch to the failure route / onreply route of the last relay. A
    branch route armed with t_on_branch runs inside t_relay, as in Kamailio: set
    ``script`` to the object whose methods are the routes (mod_init's result).
    ``relays`` holds the branches sent, ``dropped_branches`` those set_drop stopped.
    """

    def __init__(
        self,
        *,
        defines: Mapping[str, str] | None = None,
        myself: Iterable[str] = ("lab.example", "127.0.0.1:5060"),
        sql_connections: Iterable[str] = ("vm",),
    ) -> None:
        self.defines: dict[str, str] = dict(defines or {})
        self.myself = set(myself)
        self.subscribers: dict[str, str] = {}  # user@domain -> password
        self.location: dict[str, list[Contact]] = {}  # user@domain -> contacts
        self.registrar_error = False
        self.dispatcher: dict[int, list[Destination]] = {}
        self.presence = PresenceState()  # publications, subscriptions, NOTIFYs sent
        self.dialogs: dict[str, Dialog] = {}  # Call-ID -> what the dialog module tracks
        self.htables: dict[str, dict[str, Xval]] = {name: {} for name in HTABLES}
        self.flooding: set[str] = set()  # source addresses pike finds flooding
        self.rtpengine_available = True
        self.relay_result = 1
        self.script: Any = None  # the object whose methods are the routes (mod_init's)
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

    def add_dialog(self, call_id: str, *profiles: tuple[str, str], **variables: str) -> Dialog:
        """A dialog the proxy set up earlier (a call in progress), with its
        ``$dlg_var`` values (vm_peer="sip:...")."""
        dialog = self.dialogs[call_id] = Dialog(call_id, list(profiles), variables=variables)
        return dialog

    def end_dialog(self, call_id: str) -> None:
        """The call ended (BYE, or a negative final reply): the dialog module forgets it."""
        self.dialogs[call_id].ended = True

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
        self._new_records()
        self.challenges: list[str] = []
        self.challenge_flags: list[int] = []  # auth_challenge's flags (1: qop=auth)
        self.nat_calls: list[str] = []
        self.branches: list[str] = []  # R-URIs of the next t_relay's extra branches
        self.sql_results: dict[str, list[tuple[Xval, ...]]] = {}

    def _new_records(self) -> None:
        self.replies: list[Reply] = []
        self.relays: list[Relay] = []
        self.dropped_branches: list[Relay] = []  # what set_drop kept from being sent
        self.rtpengine: list[RtpengineCall] = []

    def failure(
        self, status: int, *, timed_out: bool = False, canceled: bool = False, reason: str = ""
    ) -> str:
        """The last relay's branches failed: enter its failure route (returns its name)
        with the request tm kept: the request route's changes, none of an earlier
        failure route's; flags and AVPs are the transaction's."""
        tx = self._tx
        if tx is None or not tx.relayed or tx.on_failure is None:
            raise AssertionError("no relayed transaction with a failure route armed")
        self._end_route(tx)
        name = tx.on_failure
        tx.on_failure = None  # tm disarms it; a failure route arms the next one itself
        tx.relayed = False
        self._state = self._from_transaction(tx)
        self._failure = _FailureContext(status, timed_out, canceled, reason)
        self._reply = None
        self.route_type = "failure"
        self._new_records()
        return name

    def reply(
        self,
        status: int,
        *,
        body: str = "",
        content_type: str = "application/sdp",
        to_tag: str | None = None,
        contact: str | None = None,
        record_route: tuple[str, ...] = (),
    ) -> str:
        """A reply to the last relay arrives: enter its onreply route (returns its name).
        ``to_tag``, ``contact`` (a Contact header body) and ``record_route`` (header
        values) are the reply's ($tt, $ct, $hdr(Record-Route))."""
        tx = self._tx
        if tx is None or tx.on_reply is None:
            raise AssertionError("no onreply route armed")
        self._end_route(tx)
        headers = [("Content-Type", content_type)] if body else []
        if to_tag is not None:
            headers.append(("To", f"<sip:callee@invalid>;tag={to_tag}"))
        if contact is not None:
            headers.append(("Contact", contact))
        headers += [("Record-Route", value) for value in record_route]
        self._reply = Request(str(status), "", headers, body)
        self._state = self._from_transaction(tx)
        self._failure = None
        self.route_type = "reply"
        self.rtpengine = []
        return tx.on_reply

    def _end_route(self, tx: _Transaction) -> None:
        if self.route_type == "failure":
            tx.flags = set(self._state.flags)  # tm keeps a failure route's flags

    def _from_transaction(self, tx: _Transaction) -> _MessageState:
        if tx.clone is None:
            raise AssertionError("the transaction has no request (never created)")
        state = tx.clone.copy()
        state.flags = set(tx.flags)
        return state

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
        return self._headers(self._state)

    def transaction_headers(self) -> list[tuple[str, str]]:
        """The headers of the request tm keeps (what a failure route starts from)."""
        if self._tx is None or self._tx.clone is None:
            raise AssertionError("no transaction")
        return self._headers(self._tx.clone)

    def armed(self) -> Iterator[str]:
        """Route names the script armed (for checking they exist)."""
        if self._tx is not None:
            tx = self._tx
            yield from (r for r in (tx.on_branch, tx.on_reply, tx.on_failure) if r)
        for relay in [*self.relays, *self.dropped_branches]:
            yield from (r for r in (relay.on_branch, relay.on_reply, relay.on_failure) if r)

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
        message = self._reply if self._reply is not None else request  # headers: the reply's
        header = re.fullmatch(r"\$hdr\(([\w-]+)\)", name)
        if header:
            return message.header(header.group(1))
        count = re.fullmatch(r"\$hdrc\(([\w-]+)\)", name)
        if count:
            return len(message.header_values(count.group(1)))
        indexed = re.fullmatch(r"\$\(hdr\(([\w-]+)\)\[(\d+)\]\)", name)
        if indexed:
            values = message.header_values(indexed.group(1))
            index = int(indexed.group(2))
            return values[index] if index < len(values) else None
        credentials = request.credentials
        if name in ("$au", "$ar"):
            if credentials is None:
                return None
            user, _, realm = credentials.user.partition("@")
            return user if name == "$au" else realm
        if name == "$T_reply_reason":
            return self._failure_context().reason or None
        dialog_pv = re.fullmatch(r"\$dlg(_var)?\((\w+)\)", name)
        if dialog_pv:
            return self._dialog_pv(dialog_pv.group(2), variable=bool(dialog_pv.group(1)))
        if name in ("$ct", "$tt", "$rs"):
            return self._message_pv(name)
        if name == "$rb":
            if request.binary_body:
                raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
            return request.body or None
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
            "$ft": lambda: _header_param(request.header("From") or "", "tag"),
            "$tu": lambda: to_uri,
            "$tU": lambda: uri_user_host(to_uri)[0] or None,
            "$td": lambda: uri_user_host(to_uri)[1],
            "$ci": lambda: request.header("Call-ID"),
            "$si": lambda: request.src_ip,
            "$sp": lambda: request.src_port,
            "$du": lambda: state.dst_uri,
            "$bs": lambda: len(request.body.encode()) + request.body_padding,
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
        elif name.startswith("$dlg_var(") and name.endswith(")"):
            dialog = self._dialog()
            if dialog is None:
                raise AssertionError(f"{name} set outside a dialog")
            if value is None:
                dialog.variables.pop(name[9:-1], None)
            else:
                dialog.variables[name[9:-1]] = str(value)
        elif name == "$du":
            state.dst_uri = None if value is None else str(value)
        elif name == "$ru" and isinstance(value, str):
            state.ruri = value
        elif name == "$rU" and isinstance(value, str):
            self.ksr.setuser(value)
        else:
            raise KeyError(f"the fake KSR cannot assign {value!r} to {name}")

    def _dialog(self) -> Dialog | None:
        """The dialog of the message (its Call-ID), in a request or a reply route."""
        dialog = self.dialogs.get(self.request.header("Call-ID") or "")
        return None if dialog is None or dialog.ended else dialog

    def _dialog_pv(self, key: str, *, variable: bool) -> Xval:
        dialog = self._dialog()
        if dialog is None:
            return None
        if variable:
            return dialog.variables.get(key)
        if key == "from_tag":
            return dialog.from_tag
        raise KeyError(f"the fake KSR does not implement $dlg({key})")

    def _message_pv(self, name: str) -> Xval:
        """$ct, $tt, $rs of the message being routed: the reply in an onreply route."""
        message = self._reply if self._reply is not None else self.request
        if name == "$rs":
            if self._reply is None:
                raise KeyError("$rs outside a reply route")
            return int(self._reply.method)
        if name == "$tt":
            return _header_param(message.header("To") or "", "tag")
        return message.header("Contact")

    def _is_myself(self, uri: str) -> bool:
        """Kamailio's check_self: an alias (a name here without a port) matches any
        port, a listen address (``host:port``) only its port; no port in the URI is 5060."""
        host, port = uri_host_port(uri)
        return host in self.myself or f"{host}:{port or 5060}" in self.myself

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

    def _headers(self, state: _MessageState) -> list[tuple[str, str]]:
        removed: set[int] = set()
        added: list[tuple[str, str]] = []
        for lump in state.lumps:
            removed |= lump.remove
            if lump.add is not None:
                added.append(lump.add)
        kept = [h for i, h in enumerate(self.request.headers) if i not in removed]
        return kept + added

    def _transaction(self) -> _Transaction:
        """The transaction, or what t_on_* arm for the one t_relay will create."""
        if self._tx is None:
            self._tx = _Transaction()
        return self._tx

    def _created_transaction(self) -> _Transaction:
        """t_newtran, t_relay, t_send_reply: tm clones the request when it creates one."""
        tx = self._transaction()
        if tx.clone is None:
            tx.clone = self._state.copy()
            tx.clone.lumps, tx.clone.rr_params, tx.clone.record_route = [], [], False
            tx.flags = set(self._state.flags)
        return tx

    def _relay(self) -> int:
        """t_relay: one branch for the R-URI and one per extra branch; the armed branch
        route runs for each on its own copy of the request, and may drop it."""
        tx = self._created_transaction()
        state = self._state
        assert tx.clone is not None
        if self.route_type == "request" and not tx.lumps_saved:
            # The first relay saves the request route's lumps for the failure routes.
            tx.clone.lumps = list(state.lumps)
            tx.clone.rr_params = list(state.rr_params)
            tx.clone.record_route = state.record_route
            tx.lumps_saved = True
        on_branch, tx.on_branch = tx.on_branch, None
        targets = [(state.ruri, state.dst_uri), *((uri, None) for uri in self.branches)]
        self.branches = []
        sent = 0
        for ruri, dst_uri in targets:
            branch = state.copy()
            branch.ruri, branch.dst_uri = ruri, dst_uri
            calls = len(self.rtpengine)
            if on_branch is not None:
                self._run_branch_route(on_branch, branch)
            state.flags = set(branch.flags)  # a branch route's flags stay on the message
            relay = Relay(
                ruri=branch.ruri,
                dst_uri=branch.dst_uri,
                headers=tuple(self._headers(branch)),
                body=self.request.body,
                route_type=self.route_type,
                on_reply=tx.on_reply,
                on_failure=tx.on_failure,
                fr_timers=tx.fr_timers,
                record_route=branch.record_route,
                rr_params=tuple(branch.rr_params),
                flags=frozenset(branch.flags),
                branch=tx.branches,
                on_branch=on_branch,
                rtpengine=tuple(self.rtpengine[calls:]),
            )
            if branch.drop:
                self.dropped_branches.append(relay)
                continue
            self.relays.append(relay)
            tx.branches += 1
            sent += 1
        tx.flags = set(state.flags)
        if sent == 0:
            return -1  # tm: E_CFG, every branch was dropped
        tx.relayed = True
        return self.relay_result

    def _run_branch_route(self, name: str, branch: _MessageState) -> None:
        if self.script is None:
            raise AssertionError(f"branch route {name} armed but no script loaded")
        saved, route_type = self._state, self.route_type
        self._state, self.route_type = branch, "branch"
        try:
            getattr(self.script, name)(None)
        finally:
            self._state, self.route_type = saved, route_type

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
