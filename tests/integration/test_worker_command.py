"""``voicemail worker``: the real command, as an operator starts it."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_transport import options
from tests.support.procs import stop_process

pytestmark = pytest.mark.integration
VOICEMAIL = str(Path(sys.executable).parent / "voicemail")


def write_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "voicemail.yaml"
    config.write_text(
        f"data_dir: {tmp_path}/data\n"
        "sip: {listen: 127.0.0.1, port: 0}\n"
        "rtp: {ports: [34000, 34100]}\n"
        f"storage: {{url: 'fs://{tmp_path}/spool'}}\n" + extra
    )
    return config


def test_check_reports_the_bad_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, "voicemail: {max_record_time: soon}\n")
    result = subprocess.run(
        [VOICEMAIL, "worker", "--check", "--config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "voicemail.max_record_time: expected a number, got 'soon'" in result.stderr
    good = write_config(tmp_path)
    ok = subprocess.run(
        [VOICEMAIL, "worker", "--check", "--config", str(good)], capture_output=True, text=True
    )
    assert ok.returncode == 0


def test_worker_answers_options_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [VOICEMAIL, "worker", "--config", str(config)], stderr=out, stdout=out
        )
    try:
        deadline = time.monotonic() + 20
        port = None
        while port is None:
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            found = re.search(r"worker listening on 127\.0\.0\.1:(\d+)", log.read_text())
            port = int(found[1]) if found else None
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(options("127.0.0.1", port), ("127.0.0.1", port))
            reply = sock.recv(65535)
        assert reply.startswith(b"SIP/2.0 200 OK\r\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "stopping" in log.read_text()
    finally:
        stop_process(proc)
