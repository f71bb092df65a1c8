"""The KEMI API as the real Kamailio 5.6 exports it with the repository's kamailio.cfg
(every switch on): the fake KSR offers nothing it lacks, the checked-in API file agrees
with it, and the KEMI script (kemi/) calls nothing it lacks (a typo fails here, not in a call)."""

from __future__ import annotations

import ast
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import KEMI_SCRIPT
from tests.kemi.fake_ksr import (
    API_FILE,
    CORE,
    Signature,
    offered_functions,
    parse_api_file,
    parse_api_list,
)
from tests.support.procs import free_port
from tests.support.stack import Kamailio, voicemail

pytestmark = pytest.mark.integration

SWITCHES = ("WITH_AUTH", "WITH_VOICEMAIL", "WITH_RTPENGINE", "WITH_MWI", "WITH_ANTIFLOOD")
Api = dict[tuple[str, str], Signature]


@pytest.fixture(scope="module")
def live_api() -> Iterator[Api]:
    """``app_python.api_list`` of Kamailio running kamailio.cfg; rtpengine's socket points
    at a port nobody listens on (Kamailio starts anyway and logs the failed ping)."""
    directory = Path(tempfile.mkdtemp(prefix="vm-kemi-api-"))
    try:
        db_url = f"sqlite://{directory / 'kamailio.sqlite'}"
        voicemail("db", "init", db_url)
        silent = free_port(kind=socket.SOCK_DGRAM)
        kamailio = Kamailio(
            directory,
            db_url=db_url,
            workers=[],
            rtpengine=None,
            switches=SWITCHES,
            settings={"RTPENGINE_SOCKET": f'"udp:127.0.0.1:{silent}"'},
        )
        with kamailio:
            methods = kamailio.kamcmd("system.listMethods").split()
            # The RPC keeps app_python's name in app_python3 (5.6).
            assert "app_python.api_list" in methods
            yield parse_api_list(kamailio.kamcmd("app_python.api_list"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def script_calls(path: Path) -> set[tuple[str, str]]:
    """Every ``KSR.f(...)`` and ``KSR.module.f(...)`` call in a script."""
    calls: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id == "KSR":
            calls.add((CORE, node.func.attr))
        elif (
            isinstance(owner, ast.Attribute)
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "KSR"
        ):
            calls.add((owner.attr, node.func.attr))
    return calls


def kemi_calls() -> set[tuple[str, str]]:
    """The calls of the script and of the kemi modules it is made of."""
    return set().union(*(script_calls(path) for path in sorted(KEMI_SCRIPT.parent.glob("*.py"))))


def test_script_calls_are_found() -> None:
    calls = kemi_calls()
    assert {("tm", "t_relay"), ("core", "info"), ("pv", "get")} <= calls


def test_the_fake_offers_only_what_kamailio_exports(live_api: Api) -> None:
    offered = offered_functions()
    missing = sorted(f"{m}.{n}" for m, n in offered if (m, n) not in live_api)
    assert missing == []
    different = {k: (v, live_api[k]) for k, v in offered.items() if live_api[k] != v}
    assert different == {}


def test_the_api_file_matches_kamailio_for_the_loaded_modules(live_api: Api) -> None:
    checked_in = parse_api_file(API_FILE.read_text())
    loaded = {module for module, _ in live_api}
    assert loaded <= {module for module, _ in checked_in}
    assert {k: v for k, v in checked_in.items() if k[0] in loaded} == live_api


def test_the_script_calls_only_what_kamailio_exports(live_api: Api) -> None:
    unknown = sorted(f"KSR.{m}.{n}" for m, n in kemi_calls() if (m, n) not in live_api)
    assert unknown == []


def test_a_typo_in_a_script_is_caught(live_api: Api, tmp_path: Path) -> None:
    script = tmp_path / "typo.py"
    script.write_text(
        "import KSR\nKSR.tm.t_rellay()\nKSR.is_INVITE()\nKSR.sl.sl_send_reply(1, 'x')\n"
    )
    assert script_calls(script) - live_api.keys() == {("tm", "t_rellay")}


def test_the_fake_implements_what_the_script_calls() -> None:
    offered = offered_functions()
    unknown = sorted(f"KSR.{m}.{n}" for m, n in kemi_calls() if (m, n) not in offered)
    assert unknown == []
