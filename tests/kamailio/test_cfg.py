"""``kamailio -c`` accepts kamailio.cfg on both engines (KEMI, and native with
WITH_NATIVE) for every combination of its WITH_* switches, and Kamailio really starts on
both with every switch on; only kamailio.cfg loads modules.

``kamailio -c`` only parses: it neither loads the KEMI script nor runs the fixups of
native functions (a bad regular expression or pseudo-variable in a function parameter
passes), so the start tests are what prove those."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi.settings import _DEFINES
from media_worker.lab.layout import KAMAILIO_CFG, KAMAILIO_MODULES, KEMI_SCRIPT
from tests.kamailio.native import (
    NATIVE_DIR,
    NATIVE_SWITCH,
    VOICEMAIL_CFG,
    copy_native,
    use_native,
)
from tests.support.postgres import PostgresServer
from tests.support.procs import free_udp_tcp_port
from tests.support.stack import Kamailio, Rtpengine, voicemail

pytestmark = pytest.mark.integration

SWITCHES = (
    "WITH_AUTH",
    "WITH_VOICEMAIL",
    "WITH_RTPENGINE",
    "WITH_MWI",
    "WITH_PGSQL",
    "WITH_ANTIFLOOD",
)
COMBINATIONS = [
    tuple(s for s, on in zip(SWITCHES, bits, strict=True) if on)
    for bits in itertools.product((False, True), repeat=len(SWITCHES))
]
ENGINES = {"kemi": (), "native": (NATIVE_SWITCH,)}


def install(directory: Path, kind: str, switches: tuple[str, ...]) -> Path:
    """kamailio.cfg (and for ``kind`` native its native/ directory) copied to
    ``directory`` with a kamailio-local.cfg."""
    shutil.copy(KAMAILIO_CFG, directory / KAMAILIO_CFG.name)
    if kind == "native":
        copy_native(directory)
    switches = (*switches, *ENGINES[kind])
    port = free_udp_tcp_port()
    lines = [
        f"listen=udp:127.0.0.1:{port}",
        f'mpath="{KAMAILIO_MODULES}"',
        f'#!define KEMI_SCRIPT "{KEMI_SCRIPT}"',
        f'#!define CTL_SOCKET "unix:{directory / "kamailio_ctl"}"',
        f'#!define RPC_FIFO "{directory / "kamailio_rpc.fifo"}"',
        *(f"#!define {name}" for name in switches),
    ]
    (directory / "kamailio-local.cfg").write_text("\n".join(lines) + "\n")
    return directory / KAMAILIO_CFG.name


def label(switches: tuple[str, ...]) -> str:
    return "+".join(s.removeprefix("WITH_").lower() for s in switches) or "none"


@pytest.mark.parametrize("kind", sorted(ENGINES))
@pytest.mark.parametrize("switches", COMBINATIONS, ids=label)
def test_kamailio_checks_the_cfg(tmp_path: Path, kind: str, switches: tuple[str, ...]) -> None:
    cfg = install(tmp_path, kind, switches)
    # From another directory: include_file and import_file resolve next to the cfg.
    result = subprocess.run(
        ["kamailio", "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "config file ok" in output
    bad = [line for line in output.splitlines() if "ERROR" in line or "CRITICAL" in line]
    assert not bad, output


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A Kamailio database in the private PostgreSQL, made by ``voicemail db init``."""
    postgres_server.psql("CREATE DATABASE kamailio_cfg")
    try:
        url = postgres_server.url("kamailio_cfg")
        voicemail("db", "init", url)
        # Kamailio's db_postgres knows the scheme as postgres://, not postgresql://.
        yield url.replace("postgresql://", "postgres://", 1)
    finally:
        postgres_server.psql("DROP DATABASE kamailio_cfg WITH (FORCE)")


@pytest.mark.integration
@pytest.mark.postgres
@pytest.mark.parametrize("kind", sorted(ENGINES))
def test_kamailio_starts_with_every_switch(tmp_path: Path, pg_url: str, kind: str) -> None:
    """Fixups run, the KEMI script loads, rtpengine and the database are reached."""
    with Rtpengine(tmp_path) as rtpengine:
        kamailio = Kamailio(
            tmp_path, db_url=pg_url, workers=[], rtpengine=rtpengine, switches=SWITCHES
        )
        if kind == "native":
            use_native(tmp_path)
        with kamailio:
            log = kamailio.log()
    if kind == "kemi":
        assert "voicemail proxy: auth=True voicemail=True" in log, log[-4000:]
    bad = [line for line in log.splitlines() if "ERROR" in line or "CRITICAL" in line]
    assert not bad, log[-4000:]


def test_only_kamailio_cfg_loads_modules() -> None:
    """One full cfg: the native route files load nothing and set no module parameter
    (an operator's cfg that includes voicemail.cfg keeps its own modules section)."""
    cfg_dir = KAMAILIO_CFG.parent
    files = sorted(p for p in cfg_dir.rglob("*") if p.is_file())
    assert files == sorted([KAMAILIO_CFG, *NATIVE_DIR.glob("*.cfg")]), files
    for path in files:
        if path == KAMAILIO_CFG:
            continue
        text = path.read_text()
        assert re.search(r"^\s*(loadmodule|modparamx?\s*\()", text, re.M) is None, path
        assert re.search(r"^\s*cfgengine", text, re.M) is None, path


def test_both_engines_name_the_flags_and_defines_alike() -> None:
    """The KEMI script's flags (kemi/names.py) are kamailio.cfg's defines of the same
    name and number, and every define the KEMI script reads (kemi/settings.py) is one
    the native routes read and document too."""
    cfg = KAMAILIO_CFG.read_text()
    defined = dict(re.findall(r"^#!define ((?:FL[TB]|VM_FLT)_\w+) (\d+)$", cfg, re.M))
    script = (KEMI_SCRIPT.parent / "names.py").read_text()
    flags = dict(re.findall(r"^((?:FL[TB]|VM_FLT)_\w+) = (\d+)", script, re.M))
    assert flags, script[:400]
    for name, number in flags.items():
        assert defined.get(name) == number, name
    fragment = VOICEMAIL_CFG.read_text()
    header = fragment.split("\n#!ifndef", 1)[0]
    for name in (*_DEFINES, *re.findall(r"^#!ifndef (VM_\w+)$", fragment, re.M)):
        if name in ("VM_BAN_TIME", "VM_AUTH_FAIL_LIMIT"):  # the proxy's, not voicemail's
            assert f"#!define {name} " in cfg, name
            continue
        assert name in header, name
        assert name in fragment.split("\n#!ifndef", 1)[1], name
