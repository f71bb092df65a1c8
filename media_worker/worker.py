"""The worker: SIP transport, UA core, timers and RTP endpoints around an application.

An application admits or refuses each INVITE before anything is allocated: admitting
gives a value (for the voicemail service the parsed P-App request) that the worker keeps
with the call and hands to the coroutine it runs, with a MediaSession, once the call is
answered. What a call holds goes when the call goes, whether or not it was answered.
The call ends when that coroutine returns (we send BYE) or when the caller hangs up (the
app sees a Hangup event and gets ``hangup_grace`` seconds to finish, e.g. to store a
recording).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from media_worker.application import ActiveCall, Application, CallLog
from media_worker.config import RtpConfig, SipConfig
from media_worker.media import PortAllocator, RtpEndpoint
from media_worker.pacer import Pacer
from media_worker.sdp import LocalMedia, MediaParams, SdpError, SessionDescription, negotiate
from media_worker.session import MediaSession
from media_worker.signature import UNSIGNED_METHODS, SignatureError, check_request, refusal_reason
from media_worker.sip.actions import (
    Action,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    ReInvite,
    Rejection,
    RequestDone,
    Transmit,
)
from media_worker.sip.address import Peer
from media_worker.sip.call import Call, CallState
from media_worker.sip.core import SipCore
from media_worker.sip.message import Message, Request, Response
from media_worker.sip.timers import DEFAULT_TIMERS, Timers
from media_worker.sip.transport import SipTransport

log = logging.getLogger("voicemail.worker")

STOP_GRACE = 10.0  # seconds tasks get to finish when the worker stops
BUSY_RETRY_AFTER = 5  # seconds a caller (the proxy: another worker) is asked to wait


@dataclass(frozen=True)
class WorkerSettings:
    """The configuration's ``sip:`` and ``rtp:``, and what only tests and tools change."""

    sip: SipConfig = field(default_factory=SipConfig)
    rtp: RtpConfig = field(default_factory=RtpConfig)
    timers: Timers = DEFAULT_TIMERS
    hangup_grace: float = 30.0
    clock: Callable[[], float] = time.time  # wall clock of the signatures' time stamps


@dataclass(eq=False)
class _CallState:
    call: Call
    session: MediaSession
    local: LocalMedia
    sockets: tuple[socket.socket, socket.socket]
    admitted: object  # what the application's admit() returned, for its run()
    endpoint: RtpEndpoint | None = None  # None until the media is negotiated (late offer)
    task: asyncio.Task[None] | None = None
    ringing: asyncio.TimerHandle | None = None  # the answer after sip.ring_time


class Worker:
    def __init__(self, settings: WorkerSettings, app: Application[Any]) -> None:
        self.settings = settings
        self.app = app
        sip = settings.sip
        self._trusted_nets = [ipaddress.ip_network(cidr, strict=False) for cidr in sip.trusted]
        self._advertised = sip.advertised_address or sip.listen
        self.core = SipCore(
            self._advertised,
            sip.port,
            trusted=self._trusted,
            timers=settings.timers,
            admit=self._screen,
        )
        self.transport = SipTransport(sip.listen, sip.port, self._on_message, self._trusted)
        self.ports = PortAllocator(settings.rtp.address or sip.listen, *settings.rtp.ports)
        self.pacer = Pacer()
        self._calls: dict[int, _CallState] = {}
        self._requests: dict[int, asyncio.Future[Response | None]] = {}  # by id(request)
        self._kick = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip("[]").partition("%")[0])
        except ValueError:
            return False
        return any(address in net for net in self._trusted_nets)

    @property
    def port(self) -> int:
        return self.transport.port

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.transport.start()
        self.core.via_port = self.transport.port
        self._timer_task = asyncio.create_task(self._timer_loop(), name="sip-timers")
        log.info("worker listening on %s:%d (UDP, TCP)", self.settings.sip.listen, self.port)
        if self.settings.sip.secret is None:
            log.warning(
                "sip.secret is not set: requests from trusted addresses are served unsigned"
            )

    async def stop(self) -> None:
        for state in list(self._calls.values()):
            self.end_call(state.call)
        tasks = {s.task for s in self._calls.values() if s.task is not None}
        if self._timer_task is not None:
            tasks.add(self._timer_task)
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a stuck application must not keep the worker from stopping.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in stuck:
                log.warning("task %s did not stop within %.0f s", task.get_name(), STOP_GRACE)
        await self.transport.stop()

    # ----- SIP plumbing -----

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _on_message(self, message: Message, source: Peer) -> None:
        self._dispatch(self.core.receive(message, source, self._now()))

    def _screen(self, request: Request, source: Peer) -> Rejection | None:
        """Before anything is set up for an out-of-dialog request: is it the proxy's, and
        is there room for another call?"""
        sip = self.settings.sip
        if sip.secret is not None and request.method not in UNSIGNED_METHODS:
            try:
                check_request(sip.secret, request, self.settings.clock(), sip.signature_max_age)
            except SignatureError as exc:
                reason = refusal_reason(exc)
                log.warning(
                    "[%s] %s from %s:%d refused: 403 %s",
                    request.call_id, request.method, source.host, source.port, reason,
                )  # fmt: skip
                return Rejection(403, reason)
        if request.method == "INVITE" and len(self._calls) >= sip.max_calls:
            log.warning(
                "[%s] INVITE from %s:%d refused: %d calls in progress (sip.max_calls)",
                request.call_id, source.host, source.port, len(self._calls),
            )  # fmt: skip
            return Rejection(503, "Service Unavailable", (("Retry-After", str(BUSY_RETRY_AFTER)),))
        return None

    def _dispatch(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self.transport.send(action.message, action.destination)
            elif isinstance(action, IncomingCall):
                self._incoming(action.call)
            elif isinstance(action, CallConfirmed):
                self._confirmed(action.call, action.ack)
            elif isinstance(action, CallCancelled):
                self._ended(action.call, "cancel")
            elif isinstance(action, CallEnded):
                self._ended(action.call, action.reason)
            elif isinstance(action, ReInvite):
                self._reinvite(action.call, action.request)
            elif isinstance(action, RequestDone):
                status = action.response.status if action.response else "timeout"
                log.debug("%s %s: %s", action.request.method, action.request.call_id, status)
                waiting = self._requests.pop(id(action.request), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(action.response)
        self._kick.set()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            self._kick.clear()
            delay = None if deadline is None else max(deadline - self._now(), 0)
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
            # arrives as the event is set, and stop() would wait for this loop in vain.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            self._dispatch(self.core.on_timer(self._now()))

    async def request(self, request: Request, destination: Peer) -> Response | None:
        """Send a non-INVITE request outside any call (a PUBLISH, say) in a client
        transaction; returns its final response, or None when it timed out."""
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self._requests[id(request)] = future
        try:
            self._dispatch(self.core.send_request(request, destination, self._now()))
            return await future
        finally:
            self._requests.pop(id(request), None)

    def _call_log(self, call: Call) -> CallLog:
        return CallLog(log, {"call_id": call.call_id})

    # ----- call life cycle -----

    def _incoming(self, call: Call) -> None:
        clog = self._call_log(call)
        try:
            self._admit(call, clog)
        except Exception as exc:  # noqa: BLE001 - a bad INVITE must not strand what it holds
            clog.exception("admission failed")
            self._abandon(call, 500, f"Server Internal Error ({type(exc).__name__})")

    def _admit(self, call: Call, clog: CallLog) -> None:
        try:
            admitted = self.app.admit(call.invite)
        except Exception:  # noqa: BLE001 - an application bug must not take the worker down
            clog.exception("admission failed")
            admitted = Rejection(500, "Server Internal Error")
        if isinstance(admitted, Rejection):
            clog.info("refused: %d %s", admitted.status, admitted.reason)
            self._abandon(call, admitted.status, admitted.reason)
            return
        try:
            sockets = self.ports.bind_pair()
        except OSError as exc:
            clog.error("no RTP ports: %s", exc)
            self._abandon(call, 503, "No Media Ports")
            return
        port = int(sockets[0].getsockname()[1])
        local = LocalMedia(self._advertised, port, random.getrandbits(31))
        state = _CallState(call, MediaSession(), local, sockets, admitted)
        self._calls[id(call)] = state  # from here on _release frees the ports
        try:
            if call.invite.body:
                answer, params = local.answer(SessionDescription.parse(call.invite.body))
                body = answer.serialize()
                state.endpoint = self._endpoint(params, sockets, state.session)
            else:  # late offer: ours in the 200, the answer in the ACK
                body = local.offer().serialize()
        except SdpError as exc:
            clog.info("refused: %d %s", exc.status, exc)
            self._abandon(call, exc.status, str(exc))
            return
        if self.settings.sip.ring_time > 0:
            self._dispatch(self.core.respond(call, 180, self._now()))
            state.ringing = asyncio.get_running_loop().call_later(
                self.settings.sip.ring_time, self._answer, state, body
            )
        else:
            self._answer(state, body)

    def _abandon(self, call: Call, status: int, reason: str) -> None:
        """Refuse a call that will not run and free all it held: ports, what the app
        admitted, the call (its transaction ends by the timers after the final response)."""
        state = self._calls.get(id(call))
        if state is not None:
            self._release(state)
        if call.state is CallState.EARLY:
            self._dispatch(self.core.respond(call, status, self._now(), reason=reason[:100]))
        else:
            self.end_call(call)

    def _answer(self, state: _CallState, body: bytes) -> None:
        state.ringing = None
        if state.call.state is CallState.EARLY:  # not cancelled while ringing
            self._dispatch(self.core.respond(state.call, 200, self._now(), body=body))

    def _endpoint(
        self,
        params: MediaParams,
        sockets: tuple[socket.socket, socket.socket],
        session: MediaSession,
    ) -> RtpEndpoint:
        endpoint = RtpEndpoint(
            params,
            sockets,
            self.pacer,
            on_audio=session.on_audio,
            on_digit=session.on_digit,
            on_played=session.on_played,
        )
        session.attach(endpoint)
        return endpoint

    def _confirmed(self, call: Call, ack: Request) -> None:
        state = self._calls.get(id(call))
        if state is None:
            return
        clog = self._call_log(call)
        if state.endpoint is None:
            try:
                params, _ = negotiate(SessionDescription.parse(ack.body))
                state.endpoint = self._endpoint(params, state.sockets, state.session)
            except Exception as exc:  # noqa: BLE001 - BYE at once, and the ports go with it
                if isinstance(exc, SdpError):
                    clog.info("ACK without a usable answer (%s): hanging up", exc)
                else:
                    clog.exception("ACK answer failed: hanging up")
                self.end_call(call)
                return
        state.task = asyncio.create_task(self._serve(state), name=f"call {call.call_id}")

    async def _serve(self, state: _CallState) -> None:
        assert state.endpoint is not None
        active = ActiveCall(state.call, state.session, self._call_log(state.call))
        state.endpoint.call_id = state.call.call_id
        try:
            await state.endpoint.start()
            await self.app.run(active, state.admitted)
        except asyncio.CancelledError:
            raise
        except Exception:
            active.log.exception("application failed")
        finally:
            self.end_call(state.call)
            self._release(state)

    def end_call(self, call: Call) -> None:
        """Hang up from our side (BYE, or a refusal if not answered yet)."""
        self._dispatch(self.core.hangup(call, self._now()))

    def _ended(self, call: Call, reason: str) -> None:
        state = self._calls.get(id(call))
        if state is None:
            return
        self._call_log(call).info("call ended: %s", reason)
        if state.endpoint is not None:
            state.endpoint.stop()  # flushes the last audio into the recording first
        state.session.hangup(reason)
        if state.task is None:
            self._release(state)
        elif reason != "hangup":
            asyncio.get_running_loop().call_later(
                self.settings.hangup_grace, self._cancel_if_running, state
            )

    def _cancel_if_running(self, state: _CallState) -> None:
        if state.task is not None and not state.task.done():
            self._call_log(state.call).warning("application still running after hangup: cancelled")
            state.task.cancel()

    def _release(self, state: _CallState) -> None:
        if self._calls.pop(id(state.call), None) is None:
            return
        if state.ringing is not None:
            state.ringing.cancel()
            state.ringing = None
        if state.endpoint is not None:
            state.endpoint.stop()
        for sock in state.sockets:
            sock.close()

    def _reinvite(self, call: Call, request: Request) -> None:
        state = self._calls.get(id(call))
        now = self._now()
        if state is None or state.endpoint is None:
            self._dispatch(self.core.answer_reinvite(call, 488, now))
            return
        local = state.local
        local.version += 1
        if not request.body:  # a session refresh without an offer: offer what we have
            self._dispatch(
                self.core.answer_reinvite(call, 200, now, body=local.offer().serialize())
            )
            return
        try:
            answer, params = local.answer(SessionDescription.parse(request.body))
        except Exception as exc:  # noqa: BLE001 - the re-INVITE is answered whatever failed
            if not isinstance(exc, SdpError):
                self._call_log(call).exception("re-INVITE failed")
            status = exc.status if isinstance(exc, SdpError) else 500
            self._dispatch(self.core.answer_reinvite(call, status, now))
            return
        state.endpoint.update(params)
        self._call_log(call).info("re-INVITE: media now %s", params.direction.value)
        self._dispatch(self.core.answer_reinvite(call, 200, now, body=answer.serialize()))
