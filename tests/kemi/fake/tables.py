"""The KSR modules backed by the proxy's tables: registrar (location), auth and
auth_db (subscriber), sqlops (usr_preferences), dispatcher (the workers)."""

from __future__ import annotations

from tests.kemi.fake.api import Xval, _Module
from tests.kemi.fake.sip import _header_param, uri_host_port, uri_of, uri_user_host
from tests.kemi.fake.state import Contact


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
        self._k.challenge_flags.append(flags)
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
AUTH_NONCE_REUSED, AUTH_USER_MISMATCH = -6, -8


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
        if credentials.replayed:  # nonce_count: this nonce's count was seen already
            return AUTH_NONCE_REUSED
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
        ds = kam._state.ds
        ds.current, *ds.candidates = active
        kam._state.dst_uri = active[0].uri
        return 1

    def ds_next_dst(self) -> int:
        state = self._k._state
        if not state.ds.candidates:
            return -1
        state.ds.current = state.ds.candidates.pop(0)
        state.dst_uri = state.ds.current.uri
        return 1

    def ds_mark_dst_state(self, flags: str) -> int:
        current = self._k._state.ds.current
        if current is None or not set(flags) <= set("aipdtAIPDT"):
            return -1
        current.active = not any(c in flags.lower() for c in "id")
        self._k.ds_marks.append((current.uri, flags))
        return 1

    def ds_is_from_list_uri(self, set_id: int, mode: int, uri: str) -> int:
        """``uri``'s address is a destination's of the set (-1: of any set); mode 2
        (DS_MATCH_NOPROTO) only, as the script uses it. A URI without a port does not
        match a destination that names one."""
        if mode != 2:
            raise NotImplementedError(f"fake dispatcher: ds_is_from_list_uri mode {mode}")
        kam = self._k
        sets = kam.dispatcher.values() if set_id == -1 else [kam.dispatcher.get(set_id, [])]
        host, port = uri_host_port(uri_of(uri))
        for destination in (d for destinations in sets for d in destinations):
            d_host, d_port = uri_host_port(destination.uri)
            if d_host == host and d_port in (0, port):
                return 1
        return -1

    def ds_is_from_list(self, set_id: int) -> int:
        """The source address is a destination's of the set (-1: of any set), whatever
        its state; the port counts unless the destination names none, the protocol
        never (dispatcher's DS_MATCH_NOPROTO)."""
        kam = self._k
        sets = kam.dispatcher.values() if set_id == -1 else [kam.dispatcher.get(set_id, [])]
        source = (kam.request.src_ip, kam.request.src_port)
        for destination in (d for destinations in sets for d in destinations):
            host, port = uri_host_port(destination.uri)
            if host == source[0] and port in (0, source[1]):
                return 1
        return -1
