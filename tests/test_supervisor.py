"""media_worker.supervisor: how ``voicemail worker --processes N`` splits one configuration
(SIP ports, RTP ranges, data directories), and the command's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_worker.cli import main
from media_worker.config import ConfigError, RtpConfig, SipConfig, WorkerConfig
from media_worker.supervisor import process_config

CONFIG = WorkerConfig(
    data_dir="/var/lib/voicemail", sip=SipConfig(port=5080), rtp=RtpConfig(ports=(20000, 30000))
)


def test_each_process_gets_its_port_its_rtp_slice_and_its_data_dir() -> None:
    split = [process_config(CONFIG, i, 3) for i in range(3)]
    assert [c.sip.port for c in split] == [5080, 5081, 5082]
    assert [c.rtp.ports for c in split] == [(20000, 23331), (23332, 26663), (26664, 29995)]
    assert [c.data_dir for c in split] == [
        "/var/lib/voicemail",
        "/var/lib/voicemail/process1",
        "/var/lib/voicemail/process2",
    ]
    assert all(c.rtp.ports[0] % 2 == 0 for c in split)  # each slice starts on an RTP port
    assert split[0].storage == CONFIG.storage  # one store for all


def test_one_process_is_the_configuration_unchanged() -> None:
    assert process_config(CONFIG, 0, 1) is CONFIG


def test_port_zero_stays_zero_for_every_process() -> None:
    config = WorkerConfig(sip=SipConfig(port=0))
    assert [process_config(config, i, 2).sip.port for i in range(2)] == [0, 0]


def test_a_range_too_small_to_split_is_a_configuration_error() -> None:
    config = WorkerConfig(rtp=RtpConfig(ports=(20000, 20010)))
    with pytest.raises(ConfigError, match=r"^rtp.ports: 20000-20010 gives 4 processes 2 port"):
        process_config(config, 0, 4)
    with pytest.raises(ConfigError, match=r"^sip.port: 65535 \+ 1 processes passes 65535$"):
        process_config(WorkerConfig(sip=SipConfig(port=65535)), 1, 2)


def test_check_validates_the_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "voicemail.yaml"
    config.write_text("rtp: {ports: [20000, 20010]}\n")
    assert main(["worker", "--check", "--processes", "4", "--config", str(config)]) == 2
    assert "rtp.ports: 20000-20010 gives 4 processes" in capsys.readouterr().err
    assert main(["worker", "--check", "--processes", "2", "--config", str(config)]) == 0
    with pytest.raises(SystemExit):
        main(["worker", "--check", "--processes", "0", "--config", str(config)])
