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
# the order can be checked) the way calls do: three journals at once, an append every
# 20 ms each, written by the worker's one shared flusher. After each of the flusher's
# passes it prints the bytes of each journal that pass left on disk.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from media_worker.apps.journal import Journal, JournalFlusher

    async def main() -> None:
        flusher = JournalFlusher()
        journals = [
            await Journal.create(Path(sys.argv[1]), {"mailbox": f"u{i}@lab.example",
                                                     "mode": "both", "ts": 1700000000})
            for i in range(3)
        ]
        for journal in journals:
            flusher.add(journal)
        print(" ".join(j.id for j in journals), flush=True)
        frame, passes = 0, 0
        while True:
            for journal in journals:
                journal.append(frame.to_bytes(4, "little") * 80)  # 320 bytes = 20 ms
            frame += 1
            await asyncio.sleep(0.02)
            if flusher.passes != passes:
                passes = flusher.passes
                print(" ".join(str(j.written) for j in journals), flush=True)

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
            ids = proc.stdout.readline().split()
            for _ in range(3):  # three passes of the flusher: three seconds on disk
                flushed = [int(n) for n in proc.stdout.readline().split()]
            time.sleep(0.5)  # half a second more, only in memory
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    leftovers = {found.id: found for found in recover(tmp_path)}
    assert sorted(leftovers) == sorted(ids)
    for i, (journal_id, on_disk) in enumerate(zip(ids, flushed, strict=True)):
        leftover = leftovers[journal_id]
        assert leftover.meta == {
            "v": 1, "mailbox": f"u{i}@lab.example", "mode": "both", "ts": 1700000000
        }  # fmt: skip
        # Everything a pass wrote survives; only what came after the last pass may be
        # lost (that a pass takes all that is pending: test_journal_flusher.py).
        assert on_disk > 0
        assert len(leftover.pcm) >= on_disk
        frames = len(leftover.pcm) // 320
        assert [
            int.from_bytes(leftover.pcm[n * 320 : n * 320 + 4], "little") for n in range(frames)
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
