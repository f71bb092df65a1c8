"""``voicemail worker``: the real command, as an operator starts it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_transport import options
from tests.support.procs import stop_process, wait_until

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
    proc, port = _start(config, log)
    try:
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


def _start(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    out = open(log, "a")  # noqa: SIM115 - closed when the test ends, with the process
    proc = subprocess.Popen(
        [VOICEMAIL, "worker", "--processes", "1", "--config", str(config)], stderr=out, stdout=out
    )
    out.close()

    def listening() -> bool:
        assert proc.poll() is None, log.read_text()
        return "worker listening on" in log.read_text()

    wait_until(listening, 20, log.read_text)
    ports = re.findall(r"worker listening on 127\.0\.0\.1:(\d+)", log.read_text())
    return proc, int(ports[-1])


def test_sigkill_mid_recording_and_restart_delivers_the_message(
    tmp_path: Path, caller_speech: Path
) -> None:
    import asyncio

    from storage import MessageInfo, open_storage
    from tests.support.baresip import Baresip

    patient = tmp_path / "patient.wav"
    subprocess.run(["sox", str(caller_speech), str(patient), "pad", "7", "20"], check=True)
    config = write_config(tmp_path, "apps: {default_mode: box, simple_mode: voicemail}\n")
    log = tmp_path / "worker.log"
    proc, port = _start(config, log)
    phone = Baresip(patient)
    try:
        phone.start()
        phone.dial(f"sip:bob@127.0.0.1:{port}")
        phone.wait_for_log("Call established", 10)
        time.sleep(7 + 4)  # greeting and beep (about 6.5 s), then 4 s of the message
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        journal = tmp_path / "data" / "journal"
        assert [p.suffix for p in sorted(journal.iterdir())] == [".meta", ".pcm"]
        phone.stop()
        log.write_text("")
        proc, port = _start(config, log)  # the restart delivers what was left
        wait_until(
            lambda: "recovered recording for bob@127.0.0.1" in log.read_text(), 15, log.read_text
        )
    finally:
        phone.stop()
        phone.cleanup()
        stop_process(proc)

    async def listing() -> list[MessageInfo]:
        async with open_storage(f"fs://{tmp_path}/spool") as store:
            return await store.list_mailbox("127.0.0.1", "bob")

    [message] = asyncio.run(listing())
    assert message.new
    recorded_seconds = message.duration  # audio length: what was spoken before the kill
    assert recorded_seconds is not None
    assert recorded_seconds >= 2.5  # four seconds spoken, at most the last one lost
    assert list((tmp_path / "data" / "journal").iterdir()) == []
