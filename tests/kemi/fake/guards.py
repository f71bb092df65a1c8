"""The KSR modules of the proxy's defences: dialog (the INVITE dialogs this proxy set
up, and the per-source profile), htable (the ban and failure-count tables) and pike."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.kemi.fake.api import Xval, _Module
from tests.kemi.fake.sip import _header_param


@dataclass
class Dialog:
    """A dialog the dialog module tracks: made by dlg_manage() on an initial INVITE."""

    call_id: str
    profiles: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    from_tag: str = "from-tag-1"  # the caller's ($dlg(from_tag)); sip_request's default
    variables: dict[str, str] = field(default_factory=dict)  # $dlg_var(name)


# kamailio.cfg's htables and dialog profiles (with value)
HTABLES = ("ipban", "authfail")
PROFILES_WITH_VALUE = ("vm_source",)


class DialogModule(_Module, module="dialog"):
    def _current(self) -> Dialog | None:
        kam = self._k
        dialog = kam.dialogs.get(kam.request.header("Call-ID") or "")
        return None if dialog is None or dialog.ended else dialog

    def dlg_manage(self) -> int:
        kam = self._k
        if kam.route_type != "request":
            raise AssertionError("dlg_manage outside the request route")
        if kam.request.method != "INVITE" or _header_param(kam.request.header("To") or "", "tag"):
            return -1  # the fake models initial INVITEs only
        call_id = kam.request.header("Call-ID") or ""
        from_tag = _header_param(kam.request.header("From") or "", "tag") or ""
        kam.dialogs.setdefault(call_id, Dialog(call_id, from_tag=from_tag))
        return 1

    def is_known_dlg(self) -> int:
        return 1 if self._current() is not None else -1

    def set_dlg_profile(self, profile: str, value: str) -> int:
        if profile not in PROFILES_WITH_VALUE:
            raise ValueError(f"dialog: no profile with value {profile!r} in the cfg")
        dialog = self._current()
        if dialog is None:
            return -1
        dialog.profiles.append((profile, value))
        return 1

    def get_profile_size(self, profile: str, value: str, pv: str) -> int:
        if profile not in PROFILES_WITH_VALUE:
            raise ValueError(f"dialog: no profile with value {profile!r} in the cfg")
        size = sum((profile, value) in d.profiles for d in self._k.dialogs.values() if not d.ended)
        self._k._pv_set(pv, size)
        return 1


class Htable(_Module, module="htable"):
    def _table(self, table: str) -> dict[str, Xval]:
        if table not in self._k.htables:
            raise ValueError(f"htable: no table {table!r} in the cfg")
        return self._k.htables[table]

    def sht_get(self, table: str, key: str) -> Xval:
        return self._table(table).get(key)

    def sht_seti(self, table: str, key: str, value: int) -> int:
        self._table(table)[key] = value
        return 1

    def sht_sets(self, table: str, key: str, value: str) -> int:
        self._table(table)[key] = value
        return 1

    def sht_rm(self, table: str, key: str) -> int:
        self._table(table).pop(key, None)
        return 1

    def sht_lock(self, table: str, key: str) -> int:
        self._table(table)  # one process: nothing to wait for, but the table must exist
        return 1

    def sht_unlock(self, table: str, key: str) -> int:
        self._table(table)
        return 1


class Pike(_Module, module="pike"):
    def pike_check_req(self) -> int:
        return -1 if self._k.request.src_ip in self._k.flooding else 1
