"""Recording journals: a SIGKILLed worker loses at most the last second of a recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from media_worker.apps.journal import Journal, forget, recover

# A child process records "audio" (8 kHz 16-bit: 16000 bytes a second, numbered so that
# the order can be checked) the way a call does: append every 20 ms, flush every second.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from media_worker.apps.journal import Journal

    async def main() -> None:
        journal = await Journal.create(Path(sys.argv[1]), {"mailbox": "bob@lab.example",
                                                         "mode": "both", "ts": 1700000000})
        print(journal.id, flush=True)
        frame = 0
        while True:
            for _ in range(50):
                journal.append(frame.to_bytes(4, "little") * 80)  # 320 bytes = 20 ms
                frame += 1
                await asyncio.sleep(0.02)
            await journal.flush()
            print(frame, flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.integration
def test_sigkill_mid_recording_loses_at_most_a_second(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent.parent,
    ) as proc:
        try:
            assert proc.stdout is not None
            journal_id = proc.stdout.readline().strip()
            for _ in range(3):  # three flushes: three seconds on disk
                frames_flushed = int(proc.stdout.readline())
            time.sleep(0.5)  # half a second more, only in memory
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    [leftover] = recover(tmp_path)
    assert leftover.id == journal_id
    assert leftover.meta == {"v": 1, "mailbox": "bob@lab.example", "mode": "both", "ts": 1700000000}
    frames = len(leftover.pcm) // 320
    assert frames >= frames_flushed  # nothing flushed is lost; at most the last second is
    assert [
        int.from_bytes(leftover.pcm[i * 320 : i * 320 + 4], "little") for i in range(frames)
    ] == list(range(frames))
    forget(tmp_path, leftover.id)
    assert recover(tmp_path) == []


async def test_finished_recording_is_removed(tmp_path: Path) -> None:
    journal = await Journal.create(tmp_path, {"mailbox": "bob@lab.example"})
    journal.append(b"\x01\x00" * 4000)
    half_a_second_due = journal.due
    journal.append(b"\x01\x00" * 4000)
    assert (half_a_second_due, journal.due) == (False, True)
    await journal.close()
    assert await journal.read() == b"\x01\x00" * 8000
    await journal.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_corrupt_record_is_set_aside(tmp_path: Path, caplog: object) -> None:
    (tmp_path / "bad.meta").write_bytes(b"\xc1 not msgpack")
    (tmp_path / "bad.pcm").write_bytes(b"\0\0")
    assert recover(tmp_path) == []
    assert (tmp_path / "corrupt" / "bad.meta").exists()
    assert (tmp_path / "corrupt" / "bad.pcm").exists()
