"""The worker side of the media benchmark: a real Worker process with a bench app.

Started by ``bench.media``; prints its SIP port, then obeys lines on stdin:
``mark`` starts the measured interval, ``report`` prints one JSON line of figures.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import struct
import sys
from dataclasses import dataclass, field

from media_worker.application import ActiveCall
from media_worker.config import RtpConfig, SipConfig
from media_worker.media import PlayItem
from media_worker.runtime import raise_open_file_limit, tune_for_media
from media_worker.session import Hangup
from media_worker.sip.actions import Rejection
from media_worker.sip.message import Request
from media_worker.worker import Worker, WorkerSettings

TONE = b"".join(
    struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * n / 8000))) for n in range(8000 * 60)
)


@dataclass
class Totals:
    calls: int = 0
    recorded_bytes: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    packets: int = 0
    active: set[str] = field(default_factory=set)


class BenchApp:
    """Plays a long tone and records the caller, like a voicemail call, counting all."""

    def __init__(self) -> None:
        self.totals = Totals()

    def admit(self, invite: Request) -> Rejection | None:
        return None

    async def run(self, call: ActiveCall, admitted: None) -> None:
        totals = self.totals
        totals.calls += 1
        totals.active.add(call.call_id)
        recorded = [0]

        def sink(pcm: bytes) -> None:
            recorded[0] += len(pcm)

        call.media.play([PlayItem("tone", TONE)])
        call.media.record(sink, 3600)
        try:
            while (event := await call.media.next_event(600)) is not None:
                if isinstance(event, Hangup):
                    break
        finally:
            totals.active.discard(call.call_id)
            totals.recorded_bytes += recorded[0]
            endpoint = call.media.endpoint
            if endpoint is not None:
                stats = endpoint.receiver.stats
                totals.lost += stats.lost
                totals.late += stats.late
                totals.duplicates += stats.duplicates
                totals.packets += stats.packets


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    if os.environ.get("BENCH_GC") != "default":
        tune_for_media()  # as the worker command does
    raise_open_file_limit()
    app = BenchApp()
    # As many calls as the port range holds: the benchmark measures what one worker
    # carries, beyond the 503 of the default sip.max_calls.
    settings = WorkerSettings(SipConfig(port=0, max_calls=5000), RtpConfig(ports=(40000, 50000)))
    worker = Worker(settings, app)
    await worker.start()
    print(worker.port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    base_rss = _rss_kib()
    mark = (loop.time(), _cpu_seconds())
    report: dict[str, float] = {"rss_base_kib": base_rss}
    while line := (await reader.readline()).decode().strip():
        if line == "mark":  # steady state begins
            worker.pacer.lateness = []
            mark = (loop.time(), _cpu_seconds())
        elif line == "snap":  # steady state ends: what the worker did in between
            lateness = sorted(worker.pacer.lateness or [0.0])
            worker.pacer.lateness = None
            wall = loop.time() - mark[0]
            report |= {
                "streams": len(worker.pacer),
                "lateness_p50_ms": 1000 * lateness[len(lateness) // 2],
                "lateness_p99_ms": 1000 * lateness[int(len(lateness) * 0.99)],
                "lateness_max_ms": 1000 * lateness[-1],
                "sent_packets": len(lateness),
                "cpu_fraction": (_cpu_seconds() - mark[1]) / wall,
                "rss_kib": _rss_kib(),
            }
        elif line == "report":  # after the hang-ups: what the recordings got
            for _ in range(100):
                if not app.totals.active:
                    break
                await asyncio.sleep(0.1)
            totals = app.totals
            report |= {
                "calls": totals.calls,
                "recorded_bytes": totals.recorded_bytes,
                "received_packets": totals.packets,
                "lost": totals.lost,
                "late": totals.late,
                "duplicates": totals.duplicates,
            }
            print(json.dumps(report), flush=True)
    await worker.stop()


if __name__ == "__main__":
    asyncio.run(main())
