"""media_worker.lab.layout: the secret of the proxy<->worker hop in a lab directory, on
both sides, and the lab's antiflood settings."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from kemi.signing import check_secret
from media_worker.lab.layout import (
    LAB_BAN_TIME,
    SECRET_FILE,
    Lab,
    lab_secret,
    worker_yaml,
)


def test_a_lab_directory_keeps_one_secret(tmp_path: Path) -> None:
    first = lab_secret(tmp_path)
    assert check_secret(first) == first
    assert lab_secret(tmp_path) == first  # a re-run reuses it
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert lab_secret(tmp_path / "other") != first


def test_the_proxy_and_the_worker_get_the_same_secret(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, signing=True)
    secret = lab_secret(tmp_path)
    assert f'#!define VM_SECRET "{secret}"' in lab.kamailio_local_cfg().splitlines()
    assert yaml.safe_load(lab.worker_yaml())["sip"]["secret"] == secret


def test_without_signing_neither_side_has_a_secret(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, signing=False)
    assert "VM_SECRET" not in lab.kamailio_local_cfg()
    assert "secret" not in yaml.safe_load(lab.worker_yaml())["sip"]
    assert not (tmp_path / SECRET_FILE).exists()


def test_the_lab_runs_antiflood_with_a_short_ban(tmp_path: Path) -> None:
    lines = Lab(root=tmp_path, signing=False).kamailio_local_cfg().splitlines()
    assert "#!define WITH_ANTIFLOOD" in lines
    assert f"#!define VM_BAN_TIME {LAB_BAN_TIME}" in lines
    assert LAB_BAN_TIME == 60


def test_a_worker_yaml_without_secret_is_unchanged(tmp_path: Path) -> None:
    text = worker_yaml(
        data_dir=tmp_path,
        host="127.0.0.1",
        port=5080,
        rtp_ports=(20000, 20099),
        spool=tmp_path / "spool",
        smtp_port=2525,
        prompts=None,
        mwi_proxy=None,
    )
    assert yaml.safe_load(text)["sip"] == {"listen": "127.0.0.1", "port": 5080}
