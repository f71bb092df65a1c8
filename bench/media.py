"""Media benchmark: N concurrent calls against one worker process, on loopback.

    .venv/bin/python -m bench.media [--calls 500] [--seconds 20]

Our own small UAC sets the calls up over SIP (INVITE/200/ACK, BYE at the end) and keeps
an RTP stream each way per call: it sends 50 packets/s of PCMU to the worker (which
records them) and receives the worker's 50 packets/s (the worker plays a tone). The worker
runs in its own process (bench/media_worker.py) and reports the send lateness of its
paced packets, what its recordings lost, its CPU and its memory. Target: 500 calls with
p99 send lateness <= 5 ms and no recorded packet lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from bench import uac
from media_worker import g711
from media_worker.pacer import PERIOD, TICK, Pacer
from media_worker.rtp import RtpPacket
from media_worker.runtime import raise_open_file_limit
from media_worker.sdp import SessionDescription, negotiate

TONE_FRAMES = [
    g711.ulaw_encode(
        b"".join(
            struct.pack("<h", int(5000 * math.sin(2 * math.pi * 300 * (f * 160 + n) / 8000)))
            for n in range(160)
        )
    )
    for f in range(50)
]


@dataclass(eq=False)
class BenchCall(asyncio.DatagramProtocol):
    index: int
    call_id: str
    rtp: socket.socket
    remote: tuple[str, int] | None = None
    to_header: str = ""
    due: float = 0.0
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts: int = field(default_factory=lambda: random.getrandbits(32))
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    sent: int = 0
    received: int = 0
    transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1

    def send_due(self, now: float) -> None:
        while self.due <= now + TICK / 2:
            self.due += PERIOD
            if self.transport is None or self.remote is None:
                continue
            packet = RtpPacket(0, self.seq, self.ts, self.ssrc, TONE_FRAMES[self.sent % 50])
            self.transport.sendto(packet.serialize(), self.remote)
            self.sent += 1
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + 160) & 0xFFFFFFFF


class Uac(uac.Uac[BenchCall]):
    """The bench calls' requests: to ``vm`` at the worker."""

    def headers(self, method: str, call: BenchCall, seq: int, via: str) -> list[str]:
        host, port = self.target
        return [
            f"{method} sip:vm@{host}:{port} SIP/2.0",
            via,
            f"From: <sip:bench{call.index}@127.0.0.1>;tag=b{call.index}",
            call.to_header or f"To: <sip:vm@{host}>",
            f"Call-ID: {call.call_id}",
            f"CSeq: {seq} {method}",
            f"Contact: <sip:bench@127.0.0.1:{self.port}>",
            "Max-Forwards: 70",
        ]


def sdp(port: int) -> bytes:
    return (
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
    ).encode()


async def set_up(uac: Uac, call: BenchCall) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: call, sock=call.rtp)
    call.transport = transport
    ok = await uac.transaction("INVITE", call, 1, sdp(call.rtp.getsockname()[1]))
    if ok.status != 200:
        raise RuntimeError(f"call {call.index}: {ok.status} {ok.reason}")
    params, _ = negotiate(SessionDescription.parse(ok.body))
    assert params.remote_host is not None
    call.remote = (params.remote_host, params.remote_port)
    call.to_header = f"To: {ok.headers.get('To')}"
    uac.request("ACK", call, 1)


async def run(args: argparse.Namespace) -> int:
    raise_open_file_limit()
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    worker = await asyncio.create_subprocess_exec(
        sys.executable, *profile, "-m", "bench.media_worker",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        return await drive(args, worker)
    finally:
        if worker.stdin is not None and not worker.stdin.is_closing():
            worker.stdin.close()  # the worker stops when its stdin ends
        if worker.returncode is None:
            try:
                await asyncio.wait_for(worker.wait(), 60)
            except TimeoutError:
                worker.kill()
                await worker.wait()


async def drive(args: argparse.Namespace, worker: asyncio.subprocess.Process) -> int:
    assert worker.stdout is not None
    assert worker.stdin is not None
    port = int((await worker.stdout.readline()).decode())
    loop = asyncio.get_running_loop()
    _, uac = await loop.create_datagram_endpoint(
        lambda: Uac(("127.0.0.1", port)), local_addr=("127.0.0.1", 0)
    )
    calls = []
    for i in range(args.calls):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        calls.append(BenchCall(i, f"bench-{i}-{random.getrandbits(32):x}", sock))

    started = time.perf_counter()
    for start in range(0, len(calls), args.burst):
        await asyncio.gather(*(set_up(uac, c) for c in calls[start : start + args.burst]))
    setup_s = time.perf_counter() - started
    pacer = Pacer()
    now = loop.time()
    for i, call in enumerate(calls):
        call.due = now + (i % 20) * 0.001
        pacer.add(call)
    await asyncio.sleep(2)  # let every stream settle
    worker.stdin.write(b"mark\n")
    received_before = sum(c.received for c in calls)
    await asyncio.sleep(args.seconds)
    worker.stdin.write(b"snap\n")
    received = sum(c.received for c in calls) - received_before
    for call in calls:
        pacer.remove(call)
    byes = await asyncio.gather(
        *(uac.transaction("BYE", c, 2) for c in calls), return_exceptions=True
    )
    worker.stdin.write(b"report\n")
    report = json.loads(await asyncio.wait_for(worker.stdout.readline(), 60))
    worker.stdin.close()
    for call in calls:
        if call.transport is not None:
            call.transport.close()

    sent_by_us = sum(c.sent for c in calls)
    n, secs, r = args.calls, args.seconds, report
    failed_byes = sum(1 for b in byes if isinstance(b, BaseException))
    ok = r["lateness_p99_ms"] <= 5 and r["lost"] == 0 and r["late"] == 0 and not failed_byes
    rows = [
        ("calls", f"{n} concurrent, {secs:g} s measured"),
        ("call set-up rate", f"{n / setup_s:.0f} calls/s ({n} calls in {setup_s:.2f} s)"),
        (
            "worker send lateness",
            f"p50 {r['lateness_p50_ms']:.2f} ms, p99 {r['lateness_p99_ms']:.2f} ms, "
            f"max {r['lateness_max_ms']:.2f} ms",
        ),
        (
            "worker packets sent",
            f"{r['sent_packets'] / secs:.0f}/s (50/s a call: {50 * n}/s); "
            f"received here {received / secs:.0f}/s",
        ),
        (
            "recordings",
            f"{r['received_packets']} packets: lost {r['lost']}, late {r['late']}, "
            f"duplicates {r['duplicates']}",
        ),
        (
            "recorded audio",
            f"{r['recorded_bytes'] / 16000:.1f} s of {sent_by_us * 320 / 16000:.1f} s sent",
        ),
        (
            "worker CPU",
            f"{100 * r['cpu_fraction']:.0f}% of a core, "
            f"{1000 * r['cpu_fraction'] / n:.2f} ms/s a call",
        ),
        (
            "worker memory",
            f"{(r['rss_kib'] - r['rss_base_kib']) / n:.0f} KiB a call "
            f"({r['rss_kib'] / 1024:.0f} MiB in all)",
        ),
        (
            "target",
            ("met" if ok else "MISSED")
            + " (p99 <= 5 ms, no recorded packet lost)"
            + (f"; {failed_byes} BYEs failed" if failed_byes else ""),
        ),
    ]
    for label, text in rows:
        print(f"{label:<24}{text}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=50, help="INVITEs in flight while setting up")
    parser.add_argument("--profile", metavar="FILE", help="run the worker under cProfile")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
