"""The installed product: the wheel, installed into a fresh venv outside the source tree,
finds every file the lab and ``voicemail db init`` need (the Kamailio cfg, the native
fragments, the KEMI script, the schema) in the installed package, never in the checkout.

The venv gets the project from the wheel only; its dependencies come from the venv
running the tests (a .pth file), so no network is needed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from media_worker.lab.layout import KAMAILIO_CFG_DIR, LOCAL_CFG, cfg_files
from tests.support.procs import free_port, start_process, stop_process, wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from: the tracked files, less what it never ships.
NOT_BUILT_FROM = ("tests/", "bench/", "docs/", "docker/", ".ci/")


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path  # the venv's site-packages
    cwd: Path  # a directory outside the source tree
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}{result.stderr}"
        return result

    def voicemail(self, *args: str) -> str:
        return self.run(str(self.venv / "bin" / "voicemail"), *args).stdout


def _source_copy(target: Path) -> Path:
    """The tracked files (a fresh copy: a stale build/ in the checkout is never shipped)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if name.startswith(NOT_BUILT_FROM) or not (source.exists() or source.is_symlink()):
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target / name)
        else:
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    # The suite runs from a clone (README): what git tracks is what a release ships.
    assert shutil.which("git"), "the wheel is built from a git checkout: git is missing"
    assert (REPO / ".git").exists(), "the wheel is built from a git checkout, not a copy"
    root = tmp_path_factory.mktemp("wheel")
    source = _source_copy(root / "source")
    dist = root / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = dist.glob("kamailio_voicemail-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies (PyYAML, aiosmtplib, ...) of the venv running the tests, after the
    # venv's own site-packages: the project itself comes from the wheel.
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    cwd = root / "elsewhere"
    cwd.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "VOICEMAIL_LAB", "VOICEMAIL_DB")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    shutil.rmtree(source)  # nothing can come from the copy either
    return Installed(venv, site, cwd, env)


def test_the_project_comes_from_the_wheel(installed: Installed) -> None:
    code = "import kemi, media_worker, storage; print(kemi.__file__, media_worker.__file__, storage.__file__)"
    files = installed.run(str(installed.venv / "bin" / "python"), "-c", code).stdout.split()
    assert [Path(f).parent.parent for f in files] == [installed.site] * 3
    assert not any(f.startswith(str(REPO)) for f in files)


def test_the_wheel_ships_the_whole_cfg_directory(installed: Installed) -> None:
    shipped = installed.site / "media_worker" / KAMAILIO_CFG_DIR.name
    found = {p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file()}
    assert found == set(cfg_files())
    for relative, path in cfg_files().items():
        assert (shipped / relative).read_bytes() == path.read_bytes(), relative


def test_the_lab_writes_a_kamailio_cfg_that_kamailio_accepts(installed: Installed) -> None:
    out = installed.voicemail("lab", "prepare", "--dir", "lab")
    assert "user bob@lab.example added" in out
    kamailio_dir = installed.cwd / "lab" / "kamailio"
    assert {p.relative_to(kamailio_dir) for p in kamailio_dir.rglob("*.cfg")} == {
        *cfg_files(),
        Path(LOCAL_CFG),
    }
    local = (kamailio_dir / LOCAL_CFG).read_text()
    kemi_script = installed.site / "kemi" / "proxy.py"
    assert f'#!define KEMI_SCRIPT "{kemi_script}"' in local.splitlines()
    assert kemi_script.is_file()
    result = installed.run("kamailio", "-c", "-f", str(kamailio_dir / "kamailio.cfg"))
    assert "config file ok" in result.stdout + result.stderr
    checked = installed.voicemail("worker", "--check", "--config", "lab/worker1.yaml")
    assert "configuration is valid" in checked


def test_db_init_creates_the_kamailio_tables(installed: Installed) -> None:
    url = f"sqlite://{installed.cwd / 'kamailio.sqlite'}"
    assert "created 11 tables" in installed.voicemail("db", "init", url)
    assert "nothing to do" in installed.voicemail("db", "init", url)


def test_the_installed_kemi_script_loads_as_kamailio_loads_it(
    installed: Installed, tmp_path: Path
) -> None:
    """Debian's python3 (app_python3's), standard library only, a bare KSR module, and
    the script's own sys.path entry: its directory's parent, the venv's site-packages."""
    python = Path("/usr/bin/python3")
    assert python.exists(), "Debian's python3 (the one app_python3 embeds) is missing"
    (tmp_path / "KSR.py").write_text('"""app_python3 provides KSR inside Kamailio."""\n')
    script = installed.site / "kemi" / "proxy.py"
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"runpy.run_path({str(script)!r}, run_name='kamailio')\n"
    )
    installed.run(str(python), "-I", "-S", "-c", code)


def test_the_installed_api_serves_its_pages_from_the_package(installed: Installed) -> None:
    for name in ("static/index.html", "apidocs/index.html", "apidocs/docs.js", "apidocs/docs.css"):
        assert (installed.site / "media_worker" / "api" / name).is_file(), name
    port = free_port()
    token = {"name": "t", "sha256": hashlib.sha256(b"tok").hexdigest(), "domains": "*"}
    config = installed.cwd / "api.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(installed.cwd / "data"),
                "storage": {"url": f"fs://{installed.cwd / 'spool'}"},
                "api": {"port": port, "tokens": [token]},
            }
        )
    )
    assert "configuration is valid" in installed.voicemail(
        "api", "--check", "--config", str(config)
    )
    log = installed.cwd / "api.log"
    with log.open("wb") as out:
        proc = start_process(
            [str(installed.venv / "bin" / "voicemail"), "api", "--config", str(config)], out
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(base + "/api/docs", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 30, log.read_text)
        assert httpx.get(base + "/").status_code == 200
        assert httpx.get(base + "/api/docs/docs.js").status_code == 200
    finally:
        stop_process(proc)
