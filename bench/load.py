"""Load generator: real voicemail, voicebox and annrecorder calls against a worker, from
outside, over real sockets.

    .venv/bin/python -m bench.load [--calls 100,200] [--seconds 20] [--app voicemail]
                                   [--processes N]
    .venv/bin/python -m bench.load --target HOST:PORT[,HOST:PORT] [--secret S] [--pid PID]
                                   [--spool DIR]

Without --target it starts a real ``voicemail worker`` (a temporary directory with its
config and fs store, loopback, free ports, a signing secret; ``--processes N``: N worker
processes on consecutive SIP ports, the calls dealt over them in turn as a dispatcher
would) and stops it by its PID at the end. Several --target addresses take the calls in
turn likewise. Each call sends an INVITE with P-App-Name and P-App-Param (the proxy's contract,
signed as the proxy signs it), offers PCMU and telephone-event, ACKs, then streams a
speech-like PCMU sample (tone bursts with pauses, 50 packets/s, every call paced by one
shared tick) and hangs up. Voicemail calls stream --seconds after the greeting and beep;
annrecorder calls press a key, speak --seconds, press a key, then 1 to keep; voicebox calls
enter their PIN and listen. The worker's RTP is timed at the caller from kernel receive
timestamps (SO_TIMESTAMPNS). The worker's CPU and memory come from /proc, and each stored
recording's length is checked when the store is known. One table row per --calls level.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import random
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import uac
from kemi.signing import HEADER, sign
from media_worker import g711
from media_worker.lab.procs import free_udp_tcp_port, start_process, stop_process
from media_worker.pacer import PERIOD, Pacer
from media_worker.rtp import RtpPacket
from media_worker.runtime import raise_open_file_limit
from media_worker.sdp import SessionDescription, negotiate
from media_worker.sip.message import Request
from media_worker.sip.numbers import is_number

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
DOMAIN = "load.example"
PIN = "4711"
SILENCE = g711.SILENCE["PCMU"]
TOLERANCE = 0.5  # seconds a recording may fall short of what was spoken (frame edges)
APPS = ("voicemail", "voicebox", "annrecorder")


def _speech_frames() -> tuple[list[bytes], list[bool]]:
    """Six seconds of speech-like PCMU: syllables of a gliding voiced tone (a fundamental
    with harmonics, under an envelope) with short gaps, and a long pause each 3 s."""
    frames: list[bytes] = []
    voiced: list[bool] = []
    rng = random.Random(13)
    samples: list[int] = []
    while len(samples) < 8000 * 6:
        if len(samples) % 24000 > 20000:  # the last half-second of each 3 s: a pause
            samples += [0] * 1600
            continue
        length = rng.randrange(1200, 2400)  # 150-300 ms syllables
        f0 = rng.uniform(110, 220)
        for n in range(length):
            env = math.sin(math.pi * n / length)
            f = f0 * (1 + 0.1 * n / length)
            s = sum(math.sin(2 * math.pi * f * k * n / 8000) / k for k in (1, 2, 3))
            samples.append(int(7000 * env * s))
        samples += [0] * rng.randrange(400, 800)  # 50-100 ms between syllables
    samples = samples[: 8000 * 6]
    for f in range(len(samples) // 160):
        pcm = struct.pack("<160h", *samples[f * 160 : (f + 1) * 160])
        frames.append(g711.ulaw_encode(pcm))
        voiced.append(g711.rms(pcm) >= 100)
    return frames, voiced


SPEECH, VOICED = _speech_frames()


@dataclass
class Received:
    """Inter-arrival deviations from 20 ms (seconds), and packet counts, in a window."""

    deviations: list[float] = field(default_factory=list)
    packets: int = 0


@dataclass(eq=False)
class LoadCall:
    index: int
    app: str
    user: str
    call_id: str
    rtp: socket.socket
    remote: tuple[str, int] | None = None
    to_header: str = ""
    due: float = 0.0
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts: int = field(default_factory=lambda: random.getrandbits(32))
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    frame: int = 0
    keys: list[str] = field(default_factory=list)  # digits to send, one event each
    event: list[bytes] = field(default_factory=list)  # packets of the event being sent
    speaking: bool = False
    # at the caller: the worker's RTP
    last_arrival: float | None = None
    last_sound: float = 0.0  # arrival of the worker's last packet that was not silence
    silent_run: int = 0
    record_start: float | None = None  # the worker went quiet: its beep is over
    quiet_after: float = 0.0  # the sound before the latest quiet stretch ended then
    key_sent: float = 0.0  # time.time() of the last key sent
    measuring: Received | None = None
    # what was spoken into the recording
    spoken_from: float = 0.0
    last_voiced: float = 0.0
    ended_by_worker: bool = False
    ended_at: float = math.inf  # time.monotonic() of the hang-up
    failed: str | None = None

    def send_due(self, now: float) -> None:
        while self.due <= now:
            self.due += PERIOD
            if self.remote is None:
                continue
            if self.event:
                payload = self.event.pop(0)
                first = len(self.event) == 4
                packet = RtpPacket(101, self.seq, self.ts, self.ssrc, payload, first)
                if not self.event:
                    self.ts = (self.ts + 160 * 5) & 0xFFFFFFFF
            elif self.keys:
                self.event = _event_payloads(self.keys.pop(0))
                self.key_sent = time.time()
                continue
            else:
                i = self.frame % len(SPEECH)
                payload = SPEECH[i] if self.speaking else SILENCE
                if self.speaking and VOICED[i]:
                    self.last_voiced = time.time()
                packet = RtpPacket(0, self.seq, self.ts, self.ssrc, payload)
                self.frame += 1
                self.ts = (self.ts + 160) & 0xFFFFFFFF
            with contextlib.suppress(BlockingIOError):  # a full buffer: that packet is lost
                self.rtp.sendto(packet.serialize(), self.remote)
            self.seq = (self.seq + 1) & 0xFFFF

    def readable(self) -> None:
        while True:
            try:
                data, ancillary, _, _ = self.rtp.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            arrival = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("@ll", value[:16])
                    arrival = sec + nsec * 1e-9
            if len(data) < 12 or data[1] & 0x7F != 0:
                continue
            window = self.measuring
            if window is not None:
                window.packets += 1
                if self.last_arrival is not None:
                    window.deviations.append(abs(arrival - self.last_arrival - PERIOD))
            self.last_arrival = arrival
            if data[12:] != SILENCE:
                self.last_sound = arrival
                self.silent_run = 0
            else:
                self.silent_run += 1
                if self.silent_run == 10 and self.last_sound:  # 200 ms quiet after sound
                    self.quiet_after = self.last_sound
                    if self.record_start is None:
                        self.record_start = self.last_sound


def _event_payloads(digit: str) -> list[bytes]:
    """RFC 4733: a 100 ms event (two updates, then the end three times)."""
    code = "0123456789*#".index(digit) if digit in "0123456789*#" else 0
    return [
        struct.pack("!BBH", code, 10, 320),
        struct.pack("!BBH", code, 10, 640),
        *(struct.pack("!BBH", code, 0x80 | 10, 800) for _ in range(3)),
    ]


class Uac(uac.Uac[LoadCall]):
    """The load calls' requests (P-App-*, signed as the proxy signs them), and a BYE from
    the worker noted on its call."""

    def __init__(self, target: tuple[str, int], secret: str | None) -> None:
        super().__init__(target)
        self.secret = secret
        self.calls: dict[str, LoadCall] = {}

    def on_request(self, request: Request, addr: tuple[str, int]) -> None:
        if request.method == "BYE":
            call = self.calls.get(request.call_id)
            if call is not None:
                call.ended_by_worker = True
                call.ended_at = min(call.ended_at, time.monotonic())
        if request.method in ("BYE", "OPTIONS", "INFO", "NOTIFY"):
            self._answer(request, addr)

    def _answer(self, request: Request, addr: tuple[str, int]) -> None:
        lines = [
            "SIP/2.0 200 OK",
            *(f"Via: {via}" for via in request.headers.get_all("Via")),
            f"From: {request.headers.get('From')}",
            f"To: {request.headers.get('To')}",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.headers.get('CSeq')}",
            "Content-Length: 0",
        ]
        assert self.transport is not None
        self.transport.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), addr)

    def headers(self, method: str, call: LoadCall, seq: int, via: str) -> list[str]:
        host, port = self.target
        app, param = app_headers(call)
        lines = [
            f"{method} sip:{call.user}@{host}:{port} SIP/2.0",
            via,
            f"From: <sip:caller{call.index}@{DOMAIN}>;tag=l{call.index}",
            call.to_header or f"To: <sip:{call.user}@{DOMAIN}>",
            f"Call-ID: {call.call_id}",
            f"CSeq: {seq} {method}",
            f"Contact: <sip:load@{self.host}:{self.port}>",
            "Max-Forwards: 70",
        ]
        if method == "INVITE":
            lines += [f"P-App-Name: {app}", f"P-App-Param: {param}"]
            if self.secret:
                lines.append(
                    f"{HEADER}: {sign(self.secret, int(time.time()), [call.call_id, app, param])}"
                )
        return lines


def app_headers(call: LoadCall) -> tuple[str, str]:
    """P-App-Name and P-App-Param of a call: one mailbox each."""
    base = f"usr={call.user};dom={DOMAIN};snd=caller{call.index}@{DOMAIN}"
    if call.app == "voicemail":
        return "voicemail", f"{base};mod=box"
    if call.app == "voicebox":
        return "voicebox", f"{base};pin={PIN}"
    return "annrecorder", f"{base};typ=vm"


def sdp(host: str, port: int) -> bytes:
    return (
        f"v=0\r\no=load 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    ).encode()


async def set_up(uac: Uac, call: LoadCall) -> None:
    call.rtp.setblocking(False)
    asyncio.get_running_loop().add_reader(call.rtp.fileno(), call.readable)
    uac.calls[call.call_id] = call
    ok = await uac.transaction("INVITE", call, 1, sdp(uac.host, call.rtp.getsockname()[1]))
    if ok.status != 200:
        raise RuntimeError(f"{ok.status} {ok.reason}")
    params, _ = negotiate(SessionDescription.parse(ok.body))
    assert params.remote_host is not None
    call.remote = (params.remote_host, params.remote_port)
    call.to_header = f"To: {ok.headers.get('To')}"
    uac.request("ACK", call, 1)


# ----- the worker's processes, from /proc -----


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pids: Sequence[int]) -> list[int]:
    tree, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid not in tree and Path(f"/proc/{pid}").exists():
            tree.append(pid)
            todo += _children(pid)
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes and their children (now running)."""
    ticks = 0
    for pid in process_tree(pids):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: Sequence[int]) -> int:
    total = 0
    for pid in process_tree(pids):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


# ----- the worker we start ourselves -----


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free UDP/TCP ports (the processes' SIP ports)."""
    for _ in range(100):
        first = free_udp_tcp_port()
        if first + count > 65536:
            continue
        try:
            for port in range(first + 1, first + count):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as probe:
                        probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


class OwnWorker:
    """``voicemail worker`` in a temporary directory: fs store, loopback, free ports.
    ``processes`` worker processes (``--processes``), each on its own SIP port (the first
    and the next ones) and RTP slice, each with ``max_calls``."""

    def __init__(self, max_calls: int, processes: int = 1) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vm-load-"))
        self.spool = self.dir / "spool"
        self.secret = "load-" + os.urandom(16).hex()
        self.processes = processes
        self.port = free_ports(processes)
        self.ports = [self.port + i for i in range(processes)]
        span = (2 * max_calls + 100) * processes
        rtp = random.randrange(20000, 60000 - span, 2)
        self.config = self.dir / "worker.yaml"
        self.config.write_text(
            f"data_dir: {self.dir / 'data'}\n"
            f"sip: {{listen: 127.0.0.1, port: {self.port}, secret: '{self.secret}',"
            f" max_calls: {max_calls}}}\n"
            f"rtp: {{ports: [{rtp}, {rtp + span - 1}]}}\n"
            f"storage: {{url: 'fs://{self.spool}'}}\n"
            f"email: {{smtp: {{host: 127.0.0.1, port: {free_udp_tcp_port()}, timeout: 5}}}}\n"
            "apps: {default_mode: box}\n"
        )
        self.log = self.dir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        voicemail = str(Path(sys.executable).parent / "voicemail")
        out: IO[bytes] = open(self.log, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = start_process(
            [voicemail, "worker", "--config", str(self.config), "--processes", str(self.processes)],
            out,
        )
        out.close()
        deadline = time.monotonic() + 30
        while self.log.read_text(errors="replace").count("worker listening on") < self.processes:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self, keep: bool = False) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if keep:
            print(f"worker directory kept: {self.dir}")
            return
        shutil.rmtree(self.dir, ignore_errors=True)


# ----- one level -----


@dataclass
class Row:
    calls: int
    app: str
    seconds: float
    setup_rate: float
    cpu_ms: float | None
    core: float | None
    mem_kib: float | None
    jitter: tuple[float, float, float] | None
    received: int
    expected: int
    complete: int | None
    checked: int
    failed: int
    caller_core: float


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def recordings(spool: Path, call: LoadCall) -> list[Path]:
    if call.app == "voicemail":
        box = spool / DOMAIN / call.user
        return sorted(box.glob("*.wav")) if box.is_dir() else []
    if call.app == "annrecorder":
        path = spool / f"{DOMAIN}-prompts" / call.user / "vm.wav"
        return [path] if path.exists() else []
    return []


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def until(condition: Callable[[], bool], within: float) -> bool:
    """Poll ``condition`` for at most ``within`` seconds; whether it came to hold."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def drive_call(uac: Uac, call: LoadCall, seconds: float) -> None:
    """One call after its set-up: the app's keys and speech, then BYE."""
    try:
        await _drive_call(uac, call, seconds)
    finally:
        call.ended_at = min(call.ended_at, time.monotonic())


async def _drive_call(uac: Uac, call: LoadCall, seconds: float) -> None:
    if call.app == "voicebox":
        await asyncio.sleep(1.0)
        call.keys += [*PIN, "#"]
        call.speaking = True
        await asyncio.sleep(seconds)
    else:
        if call.app == "annrecorder":
            await asyncio.sleep(0.5)
            call.keys.append("5")  # any key: beep, then record
            # The beep follows the key: the worker's first quiet stretch after it.
            await until(lambda: call.key_sent > 0, 5)
            await asyncio.sleep(0.1)
            call.record_start = None
        if not await until(
            lambda: call.record_start is not None or call.ended_by_worker, 60
        ) or not await until(
            lambda: call.app != "annrecorder" or call.quiet_after > call.key_sent, 60
        ):
            call.failed = "no beep"
            return
        if call.app == "annrecorder":
            call.record_start = call.quiet_after
        call.speaking = True
        call.spoken_from = time.time()
        await asyncio.sleep(seconds)
        call.speaking = False
        await asyncio.sleep(0.1)
        if call.app == "annrecorder":
            call.keys += ["5", "1"]  # any key ends the recording; 1 keeps it
            await asyncio.sleep(2.0)
    if call.ended_by_worker and call.app == "voicemail":
        call.failed = "hung up by the worker"
        return
    if not call.ended_by_worker:
        try:
            await uac.transaction("BYE", call, 2)
        except TimeoutError:
            call.failed = "BYE unanswered"


async def run_level(
    args: argparse.Namespace, n: int, level: int, pids: list[int], spool: Path | None
) -> Row:
    loop = asyncio.get_running_loop()
    uacs: list[Uac] = []
    for target in args.target_addrs:  # one SIP socket each; call i goes to target i mod N
        _, one = await loop.create_datagram_endpoint(
            functools.partial(Uac, target, args.secret), local_addr=(args.local, 0)
        )
        uacs.append(one)
    apps = args.app.split(",")
    run_id = f"{os.getpid():x}{level}{random.getrandbits(16):x}"
    calls = []
    for i in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((args.local, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 17)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        app = apps[i % len(apps)]
        calls.append(LoadCall(i, app, f"l{run_id}c{i}", f"load-{run_id}-{i}", sock))
    rss_before = rss_kib(pids) if pids else 0
    pacer = Pacer()
    started = time.perf_counter()
    for start in range(0, n, args.burst):
        batch = calls[start : start + args.burst]
        results = await asyncio.gather(
            *(set_up(uacs[c.index % len(uacs)], c) for c in batch), return_exceptions=True
        )
        for call, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                call.failed = f"set-up: {result}"
            else:
                call.due = loop.time() + random.random() * PERIOD
                pacer.add(call)
    setup_s = time.perf_counter() - started
    live = [c for c in calls if c.failed is None]
    tasks = [
        asyncio.create_task(drive_call(uacs[c.index % len(uacs)], c, args.seconds)) for c in live
    ]
    # The measured window: every call speaks (voicemail: after its greeting and beep).
    await until(lambda: all(c.speaking or c.failed or c.ended_by_worker for c in live), 60)
    await asyncio.sleep(min(1.0, args.seconds / 4))
    window = Received()
    for call in live:
        call.measuring = window
        call.last_arrival = None
    cpu0, t0 = (cpu_seconds(pids), time.monotonic()) if pids else (0.0, time.monotonic())
    own0 = _own_cpu()
    await asyncio.sleep(max(1.0, args.seconds / 2))
    wall = time.monotonic() - t0
    cpu1 = cpu_seconds(pids) if pids else 0.0
    own = (_own_cpu() - own0) / wall
    rss_after = rss_kib(pids) if pids else 0
    for call in live:
        call.measuring = None
    await asyncio.gather(*tasks)
    for call in live:
        pacer.remove(call)
    for call in calls:
        loop.remove_reader(call.rtp.fileno())
        call.rtp.close()
    for one in uacs:
        assert one.transport is not None
        one.transport.close()
    complete, checked = None, 0
    if spool is not None:
        await asyncio.sleep(1.0)  # the last recordings reach the store
        complete = 0
        for call in live:
            if call.app == "voicebox" or call.failed:
                continue
            checked += 1
            spoken = call.last_voiced - call.spoken_from
            files = recordings(spool, call)
            got = wav_seconds(files[-1]) if files else 0.0
            if got >= spoken - TOLERANCE:
                complete += 1
            if args.verbose:
                print(f"  {call.user} ({call.app}): recorded {got:.2f} s of {spoken:.2f} s spoken")
    failed = [c for c in calls if c.failed]
    if args.verbose:
        for call in failed:
            print(f"  {call.user} ({call.app}): {call.failed}")
    devs = sorted(window.deviations)
    jitter = (devs[len(devs) // 2], devs[int(len(devs) * 0.99)], devs[-1]) if devs else None
    cpu = (cpu1 - cpu0) / wall if pids else None
    call_seconds = sum(max(0.0, min(c.ended_at, t0 + wall) - t0) for c in live)
    return Row(
        calls=n,
        app=args.app,
        seconds=args.seconds,
        setup_rate=n / setup_s,
        cpu_ms=1000 * cpu * wall / call_seconds if cpu is not None and call_seconds else None,
        core=100 * cpu if cpu is not None else None,
        mem_kib=(rss_after - rss_before) / n if pids else None,
        jitter=jitter,
        received=window.packets,
        expected=round(50 * call_seconds),
        complete=complete,
        checked=checked,
        failed=len(failed),
        caller_core=100 * own,
    )


COLUMNS = (
    "calls", "app", "seconds", "set-up/s", "CPU ms/call-s", "% core", "KiB/call",
    "jitter p50/p99/max ms", "RTP received", "recordings", "failed", "caller % core",
)  # fmt: skip


def format_row(row: Row) -> list[str]:
    def opt(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    jitter = "-" if row.jitter is None else "/".join(f"{1000 * j:.1f}" for j in row.jitter)
    return [
        str(row.calls),
        row.app,
        f"{row.seconds:g}",
        f"{row.setup_rate:.0f}",
        opt(row.cpu_ms, ".2f"),
        opt(row.core, ".0f"),
        opt(row.mem_kib, ".0f"),
        jitter,
        f"{row.received}/{row.expected}",
        "-"
        if row.complete is None or not row.checked
        else f"{row.complete}/{row.checked} complete",
        str(row.failed),
        f"{row.caller_core:.0f}",
    ]


def print_table(rows: list[Row]) -> None:
    cells = [list(COLUMNS), *(format_row(r) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    for line in cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)), flush=True)


def local_address(target: tuple[str, int]) -> str:
    """The address of ours that the target's packets reach (for Via, Contact and SDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(target)
        return str(probe.getsockname()[0])


async def run(args: argparse.Namespace) -> int:
    raise_open_file_limit()
    levels = [int(n) for n in str(args.calls).split(",")]
    rows = []
    for level, n in enumerate(levels):
        if args.target:
            args.target_addrs = [
                (socket.gethostbyname(host), int(port))
                for host, _, port in (t.rpartition(":") for t in args.target.split(","))
            ]
            args.local = local_address(args.target_addrs[0])
            pids = [int(p) for p in args.pid.split(",")] if args.pid else []
            rows.append(await run_level(args, n, level, pids, args.spool and Path(args.spool)))
            await asyncio.sleep(2.0)  # the server settles between levels
            continue
        # Our own worker, a fresh one for each level: its memory is the level's alone.
        worker = OwnWorker(math.ceil(n / args.processes) + 10, args.processes)
        try:
            worker.start()
            assert worker.proc is not None
            args.target_addrs = [("127.0.0.1", port) for port in worker.ports]
            args.local = "127.0.0.1"
            args.secret = worker.secret
            rows.append(await run_level(args, n, level, [worker.proc.pid], worker.spool))
        finally:
            worker.stop(keep=args.keep)
    print_table(rows)
    return 0 if all(r.failed == 0 and r.complete in (None, r.checked) for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="100", help="concurrent calls; a list: one row each")
    parser.add_argument("--seconds", type=float, default=20, help="speech each call sends")
    parser.add_argument(
        "--app", default="voicemail", help="voicemail, voicebox, annrecorder, or a mix: a,b"
    )
    parser.add_argument(
        "--target",
        metavar="HOST:PORT[,HOST:PORT]",
        help="a running server (else our own); several: the calls go to each in turn",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="our own worker's processes (voicemail worker --processes N); not with --target",
    )
    parser.add_argument("--secret", help="sign the INVITEs as the proxy does (with --target)")
    parser.add_argument("--pid", help="the server's process(es) whose CPU and memory to read")
    parser.add_argument("--spool", help="the server's fs store, to check the recordings")
    parser.add_argument("--burst", type=int, default=20, help="INVITEs in flight while setting up")
    parser.add_argument("--keep", action="store_true", help="keep our worker's directory")
    parser.add_argument("--verbose", action="store_true", help="name each short or failed call")
    args = parser.parse_args(argv)
    if args.target and not all(is_number(t.rpartition(":")[2]) for t in args.target.split(",")):
        parser.error("--target: HOST:PORT")  # ASCII digits: int() would take '٥٠٦٠'
    if args.processes < 1 or (args.target and args.processes != 1):
        parser.error("--processes: a count of 1 or more, for our own worker (not --target)")
    for app in args.app.split(","):
        if app not in APPS:
            parser.error(f"--app: unknown app {app!r}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
