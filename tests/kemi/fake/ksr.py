"""What ``import KSR`` gives the script: the core functions and the module objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.kemi.fake.api import CORE, Signature, _Module
from tests.kemi.fake.guards import DialogModule, Htable, Pike
from tests.kemi.fake.modules import (
    Hdr,
    Maxfwd,
    Nathelper,
    Pv,
    Rr,
    Rtpengine,
    Sanity,
    Siputils,
    Sl,
    Textops,
    Tm,
    Tmx,
)
from tests.kemi.fake.presence import Presence
from tests.kemi.fake.sip import uri_of, uri_user_host
from tests.kemi.fake.tables import Auth, AuthDb, Dispatcher, Registrar, Sqlops

if TYPE_CHECKING:
    from tests.kemi.fake.world import FakeKamailio

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
        self.tmx = Tmx(kam)
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
        self.presence = Presence(kam)
        self.dialog = DialogModule(kam)
        self.htable = Htable(kam)
        self.pike = Pike(kam)

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
        return self._k._is_myself(uri)

    def is_myself_ruri(self) -> bool:
        return self._k._is_myself(self._k._state.ruri)

    def is_myself_furi(self) -> bool:
        return self._k._is_myself(uri_of(self._k.request.header("From") or ""))

    def is_myself_srcip(self) -> bool:
        return any(entry.split(":")[0] == self._k.request.src_ip for entry in self._k.myself)

    def is_myself_turi(self) -> bool:
        return self._k._is_myself(uri_of(self._k.request.header("To") or ""))

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

    def set_drop(self) -> None:
        if self._k.route_type != "branch":
            raise NotImplementedError("the fake models set_drop in branch routes only")
        self._k._state.drop = True


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
