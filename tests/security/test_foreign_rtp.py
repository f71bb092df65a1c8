"""Finding 5 (foreign RTP reaches calls): while a caller records a message, RFC 4733 '#'
key presses (the key that ends a recording) sent from a foreign address to the worker's
RTP port and to rtpengine's caller-facing port must be dropped: the recording is not cut
short and the call is not hung up. The caller is a raw SIP/RTP user agent, so that the
test knows the ports from the SDP and from rtpengine (ng ``query``)."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.audio import read_wav
from media_worker.g711 import ulaw_encode
from media_worker.lab.layout import DOMAIN
from media_worker.rtp import RtpPacket
from tests.security.conftest import Checks, running
from tests.support.attack import (
    Address,
    RtpengineNg,
    SipAgent,
    sdp_media,
    sdp_offer,
    telephone_event_packets,
)
from tests.support.procs import wait_until
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
CALLER, STRANGER = "127.0.0.50", "127.0.0.51"
SECONDS = 10.0  # what the caller sends after the answer
# Seconds after the answer at which the stranger aims at rtpengine's port within its
# endpoint-learning window (heuristic learning has latched onto the caller already),
# then at the worker's port, then at rtpengine's again: when the worker hangs up tells
# which defence is missing.
INJECT_AT = {"rtpengine, learning": 1.0, "worker": 4.0, "rtpengine": 6.0}
EVENT_TYPES = (101, 96, 97, 98, 99, 100)  # the telephone-event type offered, and guesses


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack()) as started:
        yield started


def speech_frames(speech: Path, seconds: float) -> list[bytes]:
    """``seconds`` of the caller's speech (repeated) as 20 ms PCMU payloads."""
    pcm = read_wav(speech.read_bytes()).data
    wanted = int(seconds * 16000)
    pcm = (pcm * (wanted // len(pcm) + 1))[:wanted]
    return [ulaw_encode(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]


def inject(stranger: socket.socket, targets: list[Address]) -> None:
    """'#' from the stranger to every target, under each plausible payload type."""
    ssrc = secrets.randbits(32)
    for target in targets:
        for payload_type in EVENT_TYPES:
            for packet in telephone_event_packets(
                "#", payload_type=payload_type, ssrc=ssrc, sequence=1000, timestamp=160000
            ):
                stranger.sendto(packet, target)


def test_foreign_key_presses_do_not_cut_a_recording(
    stack: SecureStack, caller_speech: Path, message_speech: Path, checks: Checks
) -> None:
    """Aimed at the worker's RTP port (its own source check), then at rtpengine's port
    facing the caller (strict-source)."""
    ng = RtpengineNg(stack.rtpengine.ng_port)
    frames = speech_frames(caller_speech, SECONDS)
    before = len(stack.mailbox())
    with (
        SipAgent(CALLER) as caller,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        rtp.bind((CALLER, 0))
        rtp.setblocking(False)
        stranger.bind((STRANGER, 0))
        txn = caller.invite(
            f"sip:bob@{DOMAIN}", stack.proxy, from_="sip:caller@outside.example",
            body=sdp_offer(CALLER, rtp.getsockname()[1]),
        )  # fmt: skip
        assert txn.status == 200, (txn.final, stack.logs())
        dialog = caller.confirm(txn)
        rtpengine_side = sdp_media(dialog.answer)
        ours = (CALLER, rtp.getsockname()[1])
        worker_side = [e for e in ng.endpoints(txn.call_id) if e != ours]
        checks.expect(
            bool(worker_side), f"rtpengine knows no worker endpoint: {ng.query(txn.call_id)}"
        )
        ssrc, start = secrets.randbits(32), time.monotonic()
        hung_up_at = None
        for index, payload in enumerate(frames):
            packet = RtpPacket(0, index & 0xFFFF, index * 160, ssrc, payload, index == 0)
            rtp.sendto(packet.serialize(), rtpengine_side)
            if index == int(INJECT_AT["rtpengine, learning"] * 50):
                inject(stranger, [rtpengine_side])
            if index == int(INJECT_AT["worker"] * 50):
                inject(stranger, worker_side)
            if index == int(INJECT_AT["rtpengine"] * 50):
                inject(stranger, [rtpengine_side])
            while True:  # what the worker sends us is not needed
                try:
                    rtp.recv(2048)
                except BlockingIOError:
                    break
            caller.pump(0.001)
            if caller.byes_received(txn.call_id):
                hung_up_at = time.monotonic() - start
                break
            time.sleep(max(0.0, start + (index + 1) * 0.02 - time.monotonic()))
        checks.expect(
            hung_up_at is None,
            f"the worker hung up {hung_up_at:.1f} s after the answer (keys at {INJECT_AT})"
            if hung_up_at
            else "",
        )
        if hung_up_at is None:
            caller.hang_up(dialog, stack.proxy)
    wait_until(lambda: len(stack.mailbox()) > before, 20, stack.logs)
    duration = stack.mailbox()[-1].duration or 0.0
    checks.expect(
        duration > SECONDS - 4, f"the message holds {duration:.1f} s of {SECONDS:.0f} s sent"
    )
    stack.leave_message(message_speech)
    checks.verify(stack.logs())
