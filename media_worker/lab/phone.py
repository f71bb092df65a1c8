"""baresip (Debian's baresip-core) as a scriptable phone: the lab demo's callers, and
the phones of the end-to-end tests.

Each phone gets its own config directory, SIP port and console port. Commands go to the
``cons`` module over UDP, exactly as keys typed at its console: "/dial URI", a digit
during a call sends it as DTMF (RFC 4733), "b" hangs up. The ``sndfile`` module writes
what the phone heard and what it sent to WAV files.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from media_worker.lab.procs import free_port, free_udp_tcp_port, start_process, stop_process

MODULES = ("g711.so", "aufile.so", "sndfile.so", "cons.so")
RTP_PORTS = 40  # the size of each phone's RTP port range


class Phone:
    def __init__(
        self,
        source_wav: Path,
        *,
        account: str,
        modules: tuple[str, ...] = MODULES,
        sample_rate: int = 8000,
        channels: int = 1,
        extra_config: str = "",
    ) -> None:
        """``account``: a baresip account line; ``source_wav``: the microphone, at
        ``sample_rate`` and ``channels`` (G.722 needs 16000 Hz, opus 48000 Hz stereo).
        baresip hangs up a call when the source file ends."""
        self.dir = Path(tempfile.mkdtemp(prefix="vm-baresip-"))
        self.dumps = self.dir / "dumps"
        self.dumps.mkdir()
        self._settings = [
            "poll_method epoll",
            "net_interface 127.0.0.1",
            f"audio_source aufile,{source_wav}",
            "audio_alert aufile,/dev/null",
            f"audio_srate {sample_rate}",
            f"audio_channels {channels}",
            "module_path /usr/lib/baresip/modules",
            *(f"module {m}" for m in modules),
            "module_app account.so",
            "module_app menu.so",
            f"snd_path {self.dumps}",
            extra_config,
        ]
        self._pick_ports()
        (self.dir / "accounts").write_text(account + "\n")
        self.log_path = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _pick_ports(self) -> None:
        """Free SIP, console and RTP ports, distinct from one another, written to the
        config file baresip reads at start."""
        self.sip_port = free_udp_tcp_port()  # baresip listens on UDP and TCP
        self.cons_port = free_udp_tcp_port()
        while self.cons_port == self.sip_port:
            self.cons_port = free_udp_tcp_port()
        rtp_base = free_port(kind=socket.SOCK_DGRAM) & ~1
        while any(rtp_base <= p <= rtp_base + RTP_PORTS for p in (self.sip_port, self.cons_port)):
            rtp_base = free_port(kind=socket.SOCK_DGRAM) & ~1
        ports = [
            f"sip_listen 127.0.0.1:{self.sip_port}",
            f"cons_listen 127.0.0.1:{self.cons_port}",
            f"rtp_ports {rtp_base}-{rtp_base + RTP_PORTS}",
        ]
        (self.dir / "config").write_text("\n".join(ports + self._settings) + "\n")

    def start(self) -> None:
        """Start baresip and wait until it is ready. A port handed out free can be taken
        by another process before baresip binds it; then baresip starts again on fresh
        ports (up to three times)."""
        for attempt in range(3):
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
            self.proc = start_process(["baresip", "-f", str(self.dir)], self._log)
            try:
                self.wait_for_log("baresip is ready", 10)
                return
            except AssertionError:
                if attempt == 2 or "Address already in use" not in self.log():
                    raise
                self.stop()
                self._pick_ports()

    def command(self, text: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(
                text.encode() + (b"\n" if text.startswith("/") else b""),
                ("127.0.0.1", self.cons_port),
            )

    def dial(self, uri: str) -> None:
        self.command(f"/dial {uri}")

    def hangup(self) -> None:
        self.command("b")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"baresip did not log {text!r} in {timeout} s:\n{self.log()[-3000:]}")

    def dump(self, kind: str) -> Path:
        """The WAV sndfile wrote: kind "dec" is what the phone heard, "enc" what it sent."""
        found = sorted(self.dumps.glob(f"*-{kind}.wav"))
        if not found:
            raise AssertionError(
                f"no sndfile dump *-{kind}.wav in {self.dumps}: {self.log()[-2000:]}"
            )
        return found[-1]

    def stop(self) -> None:
        """SIGTERM (baresip unregisters and hangs up), SIGKILL if it lingers."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
