"""The worker: SIP transport, UA core, timers and RTP endpoints around an application.

An application admits or refuses each INVITE before anything is allocated, then runs one
coroutine per answered call with a MediaSession. The call ends when that coroutine
returns (we send BYE) or when the caller hangs up (the app sees a Hangup event and gets
``hangup_grace`` seconds to finish, e.g. to store a recording).
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
from typing import Protocol, runtime_checkable

from media_worker.apps.params import Refusal as Refusal  # the answer an app may give
from media_worker.media import PortAllocator, RtpEndpoint
from media_worker.pacer import Pacer
from media_worker.sdp import LocalMedia, MediaParams, SdpError, SessionDescription, negotiate
from media_worker.session import MediaSession
from media_worker.signature import UNSIGNED_METHODS, SignatureError, check_request, refusal_reason
from media_worker.sip.core import (
    Action,
    Call,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallState,
    IncomingCall,
    ReInvite,
    Rejection,
    RequestDone,
    SipCore,
    Source,
    Transmit,
)
from media_worker.sip.dialog import Destination
from media_worker.sip.message import Message, Request, Response
from media_worker.sip.timers import DEFAULT_TIMERS, Timers
from media_worker.sip.transport import SipTransport

log = logging.getLogger("voicemail.worker")

DEFAULT_TRUSTED = ("127.0.0.0/8", "::1/128")
STOP_GRACE = 10.0  # seconds tasks get to finish when the worker stops
DEFAULT_MAX_CALLS = 250  # sip.max_calls: beyond, 503 and the proxy tries the next worker
DEFAULT_SIGNATURE_MAX_AGE = 30
BUSY_RETRY_AFTER = 5  # seconds a caller (the proxy: another worker) is asked to wait


@dataclass(frozen=True)
class WorkerSettings:
    sip_host: str = "127.0.0.1"
    sip_port: int = 5080  # 0: any free port
    advertised_host: str | None = None  # address in Via, Contact and SDP (default sip_host)
    rtp_host: str | None = None  # default sip_host
    rtp_ports: tuple[int, int] = (20000, 30000)
    trusted: tuple[str, ...] = DEFAULT_TRUSTED  # CIDRs allowed to send requests
    timers: Timers = DEFAULT_TIMERS
    hangup_grace: float = 30.0
    ring_time: float = 0.0  # seconds of 180 Ringing before answering (0: answer at once)
    secret: str | None = None  # the proxy's signing secret; None: trust by address alone
    signature_max_age: int = DEFAULT_SIGNATURE_MAX_AGE
    max_calls: int = DEFAULT_MAX_CALLS  # calls at once; beyond, a new INVITE gets 503
    clock: Callable[[], float] = time.time  # wall clock of the signatures' time stamps


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the call it is about."""

    def process(self, msg: str, kwargs: object) -> tuple[str, object]:  # type: ignore[override]
        extra = self.extra or {}
        return f"[{extra.get('call_id')}] {msg}", kwargs


@dataclass
class ActiveCall:
    """What an application gets for an answered call."""

    call: Call
    media: MediaSession
    log: CallLog
    _worker: Worker = field(repr=False)

    @property
    def invite(self) -> Request:
        return self.call.invite

    @property
    def call_id(self) -> str:
        return self.call.call_id

    def hangup(self) -> None:
        self._worker.end_call(self.call)


class Application(Protocol):
    def admit(self, invite: Request) -> Refusal | None:
        """Refuse the INVITE (with a status and reason) or accept it (None)."""

    async def run(self, call: ActiveCall) -> None:
        """Serve the answered call; returning ends it."""


@runtime_checkable
class ReleasesAdmissions(Protocol):
    """An Application that keeps something per admitted call until ``run`` takes it."""

    def release(self, invite: Request) -> None:
        """The admitted call is over (whether or not ``run`` ran): forget what ``admit`` kept."""


def release_admission(app: object, invite: Request) -> None:
    if isinstance(app, ReleasesAdmissions):
        app.release(invite)


@dataclass(eq=False)
class _CallState:
    call: Call
    session: MediaSession
    local: LocalMedia
    sockets: tuple[socket.socket, socket.socket]
    endpoint: RtpEndpoint | None = None  # None until the media is negotiated (late offer)
    task: asyncio.Task[None] | None = None


class Worker:
    def __init__(self, settings: WorkerSettings, app: Application) -> None:
        self.settings = settings
        self.app = app
        networks = [ipaddress.ip_network(cidr, strict=False) for cidr in settings.trusted]
        self._trusted_nets = networks
        host = settings.advertised_host or settings.sip_host
        self.core = SipCore(
            host,
            settings.sip_port,
            trusted=self._trusted,
            timers=settings.timers,
            admit=self._screen,
        )
        self.transport = SipTransport(
            settings.sip_host, settings.sip_port, self._on_message, self._trusted
        )
        self.ports = PortAllocator(settings.rtp_host or settings.sip_host, *settings.rtp_ports)
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
        log.info("worker listening on %s:%d (UDP, TCP)", self.settings.sip_host, self.port)
        if self.settings.secret is None:
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

    def _on_message(self, message: Message, source: Source) -> None:
        self._dispatch(self.core.receive(message, source, self._now()))

    def _screen(self, request: Request, source: Source) -> Rejection | None:
        """Before anything is set up for an out-of-dialog request: is it the proxy's, and
        is there room for another call?"""
        settings = self.settings
        if settings.secret is not None and request.method not in UNSIGNED_METHODS:
            try:
                check_request(
                    settings.secret, request, settings.clock(), settings.signature_max_age
                )
            except SignatureError as exc:
                reason = refusal_reason(exc)
                log.warning(
                    "[%s] %s from %s:%d refused: 403 %s",
                    request.call_id, request.method, source.host, source.port, reason,
                )  # fmt: skip
                return Rejection(403, reason)
        if request.method == "INVITE" and len(self._calls) >= settings.max_calls:
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

    async def request(self, request: Request, destination: Destination) -> Response | None:
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
            refusal = self.app.admit(call.invite)
        except Exception:  # noqa: BLE001 - an application bug must not take the worker down
            clog.exception("admission failed")
            refusal = Refusal(500, "Server Internal Error")
        if refusal is not None:
            clog.info("refused: %d %s", refusal.status, refusal.reason)
            self._abandon(call, refusal.status, refusal.reason)
            return
        advertised = self.settings.advertised_host or self.settings.sip_host
        try:
            sockets = self.ports.bind_pair()
        except OSError as exc:
            clog.error("no RTP ports: %s", exc)
            self._abandon(call, 503, "No Media Ports")
            return
        local = LocalMedia(advertised, int(sockets[0].getsockname()[1]), random.getrandbits(31))
        state = _CallState(call, MediaSession(), local, sockets)
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
        if self.settings.ring_time > 0:
            self._dispatch(self.core.respond(call, 180, self._now()))
            asyncio.get_running_loop().call_later(
                self.settings.ring_time, self._answer, state, body
            )
        else:
            self._answer(state, body)

    def _abandon(self, call: Call, status: int, reason: str) -> None:
        """Refuse a call that will not run and free all it held: ports, the app's entry,
        the call (its transaction ends by the timers after the final response)."""
        state = self._calls.get(id(call))
        if state is not None:
            self._release(state)
        else:
            self._release_admission(call)
        if call.state is CallState.EARLY:
            self._dispatch(self.core.respond(call, status, self._now(), reason=reason[:100]))
        else:
            self.end_call(call)

    def _release_admission(self, call: Call) -> None:
        try:
            release_admission(self.app, call.invite)
        except Exception:  # noqa: BLE001 - the call is over either way
            self._call_log(call).exception("application failed to release the call")

    def _answer(self, state: _CallState, body: bytes) -> None:
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
            on_play_event=session.on_play_event,
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
        active = ActiveCall(state.call, state.session, self._call_log(state.call), self)
        state.endpoint.call_id = state.call.call_id
        try:
            await state.endpoint.start()
            await self.app.run(active)
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
        if state.endpoint is not None:
            state.endpoint.stop()
        for sock in state.sockets:
            sock.close()
        self._release_admission(state.call)

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
