"""kemi/ is what Kamailio's app_python3 loads: every module imports with nothing but the
standard library (no site-packages, no media_worker or storage beside it) and a bare
KSR module, as Kamailio provides one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

KEMI = Path(__file__).resolve().parents[2] / "kemi"
MODULES = sorted(f"kemi.{p.stem}" for p in KEMI.glob("*.py") if p.stem != "__init__")

# Runs under -I -S: no site-packages, no current directory, no PYTHON* variables.
PROBE = """\
import importlib, sys, sysconfig
sys.path[:0] = [{only_kemi!r}, {stub!r}]
importlib.import_module({module!r})
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
foreign = sorted(
    name for name, mod in sys.modules.items()
    if (path := getattr(mod, "__file__", None))
    and not path.startswith(stdlib)
    and not path.startswith({only_kemi!r})
    and name != "KSR"
)
assert not foreign, foreign
"""


def test_every_kemi_module_is_listed() -> None:
    assert "kemi.proxy" in MODULES
    assert "kemi.app_param" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_kemi_module_imports_with_the_standard_library_only(tmp_path: Path, module: str) -> None:
    only_kemi = tmp_path / "path"
    only_kemi.mkdir()
    (only_kemi / "kemi").symlink_to(KEMI)
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "KSR.py").write_text('"""app_python3 provides KSR inside Kamailio."""\n')
    code = PROBE.format(only_kemi=str(only_kemi), stub=str(stub), module=module)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
