"""Kamailio on the native routes: kamailio-cfg/kamailio.cfg with WITH_NATIVE, which
includes native/proxy.cfg (and so native/voicemail.cfg) next to it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.source import SOURCE_TREE

NATIVE_DIR = SOURCE_TREE / "kamailio-cfg" / "native"
VOICEMAIL_CFG = NATIVE_DIR / "voicemail.cfg"
NATIVE_SWITCH = "WITH_NATIVE"


def copy_native(directory: Path) -> None:
    """The native route files next to a kamailio.cfg in ``directory``."""
    shutil.copytree(NATIVE_DIR, directory / "native", dirs_exist_ok=True)


def use_native(directory: Path) -> None:
    """The Kamailio whose kamailio.cfg and kamailio-local.cfg are in ``directory`` runs
    the native routes."""
    copy_native(directory)
    with (directory / "kamailio-local.cfg").open("a") as local:
        local.write(f"#!define {NATIVE_SWITCH}\n")
