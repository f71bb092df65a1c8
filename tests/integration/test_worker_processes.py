"""``voicemail worker --processes 2``: two worker processes on consecutive ports under a
supervisor that restarts a process that dies (its replacement delivers the recording the
dead one left, once) and stops both on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from pathlib import Path

import pytest

from media_worker.audio import read_wav, write_wav
from media_worker.lab.probes import answers_options
from storage import open_storage
from tests.integration import test_admission
from tests.integration.test_admission import UacFactory, to_tag
from tests.integration.test_overload import SILENT_FRAME, TONE_FRAME, Caller, MediaUac, tone
from tests.integration.test_worker_command import write_config
from tests.support.procs import eventually, free_udp_tcp_port, start_process, stop_process

pytestmark = pytest.mark.integration
VOICEMAIL = str(Path(sys.executable).parent / "voicemail")
APP = "P-App-Name: voicemail\r\nP-App-Param: usr=bob;dom=lab.example;mod=box\r\n"
uac_for = test_admission.uac_for  # the fixture: UDP sockets for raw UACs


def started(log: Path) -> dict[int, list[int]]:
    """Process index -> the PIDs the supervisor started for it, in order."""
    pids: dict[int, list[int]] = {}
    for index, pid in re.findall(r"process (\d) started \(pid (\d+)\)", log.read_text()):
        pids.setdefault(int(index), []).append(int(pid))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_processes_serve_restart_and_stop(tmp_path: Path, uac_for: UacFactory) -> None:
    base = free_udp_tcp_port(count=2)
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("port: 0", f"port: {base}"))
    async with open_storage(f"fs://{tmp_path}/spool") as store:  # a short greeting
        await store.put_greeting("lab.example", "bob", "vm", write_wav(tone(0.4, 600.0)))
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        proc = start_process(
            [VOICEMAIL, "worker", "--processes", "2", "--config", str(config)], out
        )
    ports = (base, base + 1)
    try:
        both = lambda: all(answers_options("127.0.0.1", p, 0.5) for p in ports)  # noqa: E731
        await eventually(both, 15, log.read_text)
        uac = uac_for(base)  # process 0 admits a call
        answer = await uac.invite("call-0", APP)
        assert answer.status == 200, log.read_text()
        assert (await uac.bye("call-0", to_tag(answer))).status == 200
        # Process 1 admits one too, and dies while it records.
        loop = asyncio.get_running_loop()
        _, caller = await loop.create_datagram_endpoint(Caller, local_addr=("127.0.0.1", 0))
        try:
            plain = uac_for(base + 1)
            answer = await MediaUac(plain.sock, plain.worker, caller.port).invite("call-1", APP)
            assert answer.status == 200, log.read_text()
            caller.worker = ("127.0.0.1", int(answer.body.decode().split("m=audio ")[1].split()[0]))
            stream = [random.randrange(1 << 16), 0]
            while not caller.beep_ended():
                await caller.stream(5, SILENT_FRAME, stream)
                assert len(caller.loud) < 500, "greeting and beep never ended"
            await caller.stream(150, TONE_FRAME, stream)  # three seconds of speech
            await asyncio.sleep(1.2)  # the journal is flushed at least once a second
            [first] = started(log)[1]
            os.kill(first, signal.SIGKILL)
        finally:
            assert caller.transport is not None
            caller.transport.close()
        await eventually(lambda: len(started(log)[1]) == 2, 10, log.read_text)
        restarting = f"process 1 (pid {first}) exited with status -9; restarting in 1 s"
        assert restarting in log.read_text()
        recovered = "recovered recording for bob@lab.example: "
        await eventually(lambda: recovered in log.read_text(), 10, log.read_text)
        await eventually(lambda: answers_options("127.0.0.1", base + 1, 0.5), 10, log.read_text)
        children = [pid for pids in started(log).values() for pid in pids]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(25) == 0
        assert not [pid for pid in children if alive(pid)], log.read_text()
        assert log.read_text().count("INFO voicemail: stopping") == 2
    finally:
        stop_process(proc)
    # Each process kept its own journal and outbox: 0 in data_dir, 1 in data_dir/process1;
    # the recording process 1 left was delivered once, by its replacement.
    assert (tmp_path / "data" / "outbox").is_dir()
    assert list((tmp_path / "data" / "process1" / "journal").iterdir()) == []
    assert log.read_text().count("recovered recording") == 1
    async with open_storage(f"fs://{tmp_path}/spool") as store:
        [message] = await store.list_mailbox("lab.example", "bob")
        audio = read_wav((await store.get_message("lab.example", "bob", message.name)).audio)
    assert audio.duration >= 2.0  # three seconds spoken, at most the last one lost
