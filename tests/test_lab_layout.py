"""media_worker.lab.layout: the secret of the proxy<->worker hop in a lab directory, on
both sides, the lab's antiflood settings, and the shipped cfg files each lab gets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from kemi.signing import check_secret
from media_worker.cli import main
from media_worker.config import load_config
from media_worker.lab.layout import (
    KAMAILIO_CFG,
    KAMAILIO_CFG_DIR,
    KEMI_SCRIPT,
    LAB_BAN_TIME,
    LOCAL_CFG,
    SECRET_FILE,
    WEBHOOK_SECRET_FILE,
    Lab,
    Ports,
    cfg_files,
    lab_secret,
    worker_yaml,
)
from media_worker.lab.sites import WEBHOOK_EVENTS


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


def test_the_kamailio_part_gets_every_shipped_cfg_file(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, signing=False)
    lab.write_configs("kamailio")
    written = {p.relative_to(lab.kamailio_dir) for p in lab.kamailio_dir.rglob("*") if p.is_file()}
    assert written == {*cfg_files(), Path(LOCAL_CFG), Path("dispatcher.list")}
    assert Path("native/voicemail.cfg") in written  # the fragments, for include_file
    assert (lab.kamailio_dir / "kamailio.cfg").read_bytes() == KAMAILIO_CFG.read_bytes()
    assert not lab.worker_config().exists()  # each part writes only its own files


def test_the_shipped_files_are_found_through_the_package() -> None:
    assert KAMAILIO_CFG.is_file()
    assert KAMAILIO_CFG.parent == KAMAILIO_CFG_DIR
    assert KEMI_SCRIPT.name == "proxy.py"
    assert KEMI_SCRIPT.is_file()
    assert Path(LOCAL_CFG) not in cfg_files()  # a site's own file is never the product's


def test_prepare_names_the_parts_it_knows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "prepare", "phone", "--dir", str(tmp_path)]) == 2
    assert (
        "name a part: smtp, webhooks, rtpengine, worker1, kamailio, api" in capsys.readouterr().err
    )
    assert not (tmp_path / "kamailio").exists()


def test_the_worker_part_runs_two_processes_and_the_dispatcher_set_lists_both(
    tmp_path: Path,
) -> None:
    lab = Lab(root=tmp_path, signing=False)
    assert lab.dispatcher_list() == (
        "1 sip:127.0.0.1:5080;transport=udp\n1 sip:127.0.0.1:5081;transport=udp\n"
    )
    assert lab.commands()["worker1"][-2:] == ["--processes", "2"]
    config = yaml.safe_load(lab.worker_yaml())
    assert (config["sip"]["port"], config["rtp"]["ports"]) == (5080, [20000, 20999])


def test_the_api_reads_the_workers_file_and_checks_passwords_in_the_labs_database(
    tmp_path: Path,
) -> None:
    lab = Lab(root=tmp_path, signing=False)
    config = yaml.safe_load(lab.worker_yaml())
    assert config["api"] == {
        "listen": "127.0.0.1",
        "port": 8080,
        "public_url": "http://127.0.0.1:8080",
        "kamailio_db": lab.db_url,
    }
    assert lab.commands()["api"][1:] == ["api", "--config", str(lab.worker_config())]
    lab.write_configs("api")  # the API part alone (a container) writes the same file
    assert lab.worker_config().read_text() == lab.worker_yaml()


def test_the_worker_signs_webhooks_with_the_secret_the_catcher_checks(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, ports=Ports(webhooks=18090), signing=False)
    assert lab.commands()["webhooks"][-2:] == ["--dir", str(tmp_path / "webhooks")]
    assert not (tmp_path / WEBHOOK_SECRET_FILE).exists()  # listing commands creates nothing
    command = lab.command("webhooks")
    secret = (tmp_path / WEBHOOK_SECRET_FILE).read_text().strip()
    assert command[-2:] == ["--secret", secret]
    assert command[command.index("--port") + 1] == "18090"
    [endpoint] = yaml.safe_load(lab.worker_yaml())["webhooks"]["endpoints"]
    assert endpoint == {
        "name": "lab-catcher",
        "url": "http://127.0.0.1:18090/",
        "secret": secret,
        "events": list(WEBHOOK_EVENTS),
    }
    assert lab.command("worker1") == lab.commands()["worker1"]


def test_the_labs_file_is_a_valid_worker_and_api_configuration(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path)
    lab.write_configs("worker1")
    config = load_config(lab.worker_config())
    assert config.api is not None
    assert (config.api.listen, config.api.port) == ("127.0.0.1", 8080)
    assert config.api.kamailio_db == lab.db_url
    assert config.webhooks is not None
    [endpoint] = config.webhooks.endpoints
    assert (endpoint.url, endpoint.secret) == ("http://127.0.0.1:8090/", lab.webhook_secret)
    assert Path(config.data_dir) == tmp_path / "worker1"  # the API spools its changes there
