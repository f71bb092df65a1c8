"""``kamailio -c`` accepts kamailio.cfg (KEMI) and the native cfg for every combination
of their WITH_* switches, and Kamailio really starts on both with every switch on.

``kamailio -c`` only parses: it neither loads the KEMI script nor runs the fixups of
native functions (a bad regular expression or pseudo-variable in a function parameter
passes), so the start tests are what prove those."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import KAMAILIO_CFG, KAMAILIO_MODULES, KEMI_SCRIPT, SOURCE_TREE
from tests.support.postgres import PostgresServer
from tests.support.procs import free_udp_tcp_port
from tests.support.stack import Kamailio, Rtpengine, voicemail

pytestmark = pytest.mark.integration

NATIVE_DIR = SOURCE_TREE / "kamailio-cfg" / "native"
NATIVE_CFG = NATIVE_DIR / "kamailio-native.cfg"
VOICEMAIL_CFG = NATIVE_DIR / "voicemail.cfg"
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
CFGS = {"kemi": (KAMAILIO_CFG,), "native": (NATIVE_CFG, VOICEMAIL_CFG)}


def install(directory: Path, kind: str, switches: tuple[str, ...]) -> Path:
    """The cfg files of ``kind`` copied to ``directory`` with a kamailio-local.cfg."""
    files = CFGS[kind]
    for path in files:
        shutil.copy(path, directory / path.name)
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
    return directory / files[0].name


def label(switches: tuple[str, ...]) -> str:
    return "+".join(s.removeprefix("WITH_").lower() for s in switches) or "none"


@pytest.mark.parametrize("kind", sorted(CFGS))
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
@pytest.mark.parametrize("kind", sorted(CFGS))
def test_kamailio_starts_with_every_switch(tmp_path: Path, pg_url: str, kind: str) -> None:
    """Fixups run, the KEMI script loads, rtpengine and the database are reached."""
    with Rtpengine(tmp_path) as rtpengine:
        kamailio = Kamailio(
            tmp_path, db_url=pg_url, workers=[], rtpengine=rtpengine, switches=SWITCHES
        )
        if kind == "native":
            shutil.copy(NATIVE_CFG, tmp_path / "kamailio.cfg")
            shutil.copy(VOICEMAIL_CFG, tmp_path / "voicemail.cfg")
        with kamailio:
            log = kamailio.log()
    if kind == "kemi":
        assert "voicemail proxy: auth=True voicemail=True" in log, log[-4000:]
    bad = [line for line in log.splitlines() if "ERROR" in line or "CRITICAL" in line]
    assert not bad, log[-4000:]
