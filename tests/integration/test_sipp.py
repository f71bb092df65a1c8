"""SIPp (Debian's sip-tester) as an independent peer for the transaction layer."""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
from pathlib import Path

import pytest

from media_worker.application import ActiveCall
from media_worker.session import Hangup
from media_worker.sip.actions import Rejection
from media_worker.sip.address import Peer
from media_worker.sip.message import Request, Response
from media_worker.worker import Worker
from tests.integration.conftest import WorkerFactory
from tests.support.procs import free_port

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).parent.parent / "data" / "sipp"


class WaitingApp:
    """Answers and waits for the caller to hang up."""

    def __init__(self) -> None:
        self.calls = 0

    def admit(self, invite: Request) -> Rejection | None:
        return None

    async def run(self, call: ActiveCall, admitted: None) -> None:
        self.calls += 1
        while (event := await call.media.next_event(30)) is not None:
            if isinstance(event, Hangup):
                return


def record_sends(worker: Worker) -> list[tuple[float, Request | Response]]:
    """Every message the worker sends, with the loop time it was sent at."""
    sent: list[tuple[float, Request | Response]] = []
    original = worker.transport.send
    loop = asyncio.get_running_loop()

    def send(message: Request | Response, dest: Peer) -> None:
        sent.append((loop.time(), message))
        original(message, dest)

    worker.transport.send = send  # type: ignore[method-assign]
    return sent


async def run_sipp(scenario: str, worker: Worker, tmp_path: Path) -> None:
    errors = tmp_path / "sipp-errors.log"
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        "-sf", str(SCENARIOS / f"{scenario}.xml"),
        "-m", "1",
        "-i", "127.0.0.1",
        "-p", str(free_port(kind=socket.SOCK_DGRAM)),
        "-mp", str(free_port(kind=socket.SOCK_DGRAM)),
        "-nr",  # our scenarios send retransmissions themselves, where they want them
        "-nostdin",
        "-timeout", "30",
        "-timeout_error",
        "-trace_err", "-error_file", str(errors),
        f"127.0.0.1:{worker.port}",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = errors.read_text() if errors.exists() else ""
    assert proc.returncode == 0, f"sipp {scenario} failed:\n{log}\n{out.decode()[-2000:]}"


def statuses(sent: list[tuple[float, Request | Response]], status: int) -> list[float]:
    return [t for t, m in sent if isinstance(m, Response) and m.status == status]


async def test_invite_retransmitted_while_ringing(
    start_worker: WorkerFactory, tmp_path: Path
) -> None:
    app = WaitingApp()
    worker = await start_worker(app, ring_time=1.0)
    sent = record_sends(worker)
    await run_sipp("invite-retransmitted", worker, tmp_path)
    assert app.calls == 1
    assert len(statuses(sent, 180)) == 2  # the retransmission got the 180 again


async def test_ack_withheld_2xx_retransmitted_on_schedule(
    start_worker: WorkerFactory, tmp_path: Path
) -> None:
    app = WaitingApp()
    worker = await start_worker(app)
    sent = record_sends(worker)
    await run_sipp("ack-withheld", worker, tmp_path)
    oks = [
        t
        for t, m in sent
        if isinstance(m, Response) and m.status == 200 and "INVITE" in (m.headers.get("CSeq") or "")
    ]
    gaps = [b - a for a, b in itertools.pairwise(oks)]
    # RFC 3261 13.3.1.4: T1 = 0.5 s, doubling (1, 2, 4 s...) until the ACK came at ~3.9 s.
    assert len(gaps) >= 3, gaps
    for gap, expected in zip(gaps, (0.5, 1.0, 2.0), strict=False):
        assert abs(gap - expected) < 0.15, gaps
    assert app.calls == 1


async def test_bye_retransmitted_gets_the_same_200(
    start_worker: WorkerFactory, tmp_path: Path
) -> None:
    app = WaitingApp()
    worker = await start_worker(app)
    sent = record_sends(worker)
    await run_sipp("bye-retransmitted", worker, tmp_path)
    byes = [
        m for _, m in sent if isinstance(m, Response) and "BYE" in (m.headers.get("CSeq") or "")
    ]
    assert len(byes) == 2
    assert byes[0] == byes[1]


async def test_cancel_while_ringing(start_worker: WorkerFactory, tmp_path: Path) -> None:
    app = WaitingApp()
    worker = await start_worker(app, ring_time=5.0)
    await run_sipp("cancel-while-ringing", worker, tmp_path)
    assert app.calls == 0
    assert worker.core.calls == {}


async def test_cancel_after_the_answer_changes_nothing(
    start_worker: WorkerFactory, tmp_path: Path
) -> None:
    app = WaitingApp()
    worker = await start_worker(app)
    await run_sipp("cancel-after-answer", worker, tmp_path)
    assert app.calls == 1


async def test_unknown_dialog_bye(start_worker: WorkerFactory, tmp_path: Path) -> None:
    worker = await start_worker(WaitingApp())
    sent = record_sends(worker)
    await run_sipp("unknown-dialog-bye", worker, tmp_path)
    assert statuses(sent, 481)


class CodecApp(WaitingApp):
    """Notes the codec each call's media settled on."""

    def __init__(self) -> None:
        super().__init__()
        self.codecs: list[str] = []

    async def run(self, call: ActiveCall, admitted: None) -> None:
        assert call.media.endpoint is not None
        self.codecs.append(call.media.endpoint.params.codec.name)
        await super().run(call, admitted)


async def test_late_offer_answer_in_the_ack(start_worker: WorkerFactory, tmp_path: Path) -> None:
    app = CodecApp()
    worker = await start_worker(app)
    await run_sipp("late-offer", worker, tmp_path)
    assert app.codecs == ["PCMA"]  # settled by the answer in the ACK
