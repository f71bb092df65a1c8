"""The KEMI script imported against a test's fake KSR."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from tests.kemi.fake_ksr import FakeKamailio

SCRIPT = "kemi.proxy"


def load_script(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """kemi.proxy and the route modules it inherits from, imported afresh so that they
    call this test's fake KSR (the modules of pure functions stay as they are, so their
    classes keep their identity). Everything is put back after the test."""
    monkeypatch.setitem(sys.modules, "KSR", kam.ksr)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends its directory
    for name, module in list(sys.modules.items()):
        if name == SCRIPT or (name.startswith("kemi.") and hasattr(module, "KSR")):
            monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(SCRIPT)
