"""A recording becomes a message: stored and/or emailed per the call's mode.

Used when a voicemail call ends and for the journals redelivery tries again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from media_worker.apps.context import AppContext
from media_worker.apps.params import AppRequest
from media_worker.audio import is_silent, trim_trailing_silence, write_wav
from media_worker.mail.message import build_email
from media_worker.mail.template import select_template

Remember = Callable[[dict[str, str]], Awaitable[None]]


async def deliver(
    context: AppContext,
    request: AppRequest,
    pcm: bytes,
    answered_at: int,
    call_id: str,
    *,
    done: dict[str, str] | None = None,
    remember: Remember | None = None,
) -> str:
    """Store and/or email a recording per the mode; returns what happened, for the log.

    ``done``: the steps an earlier attempt completed ("stored", "emailed"), which are
    not repeated; ``remember`` is given it after each step, so a retry after a failure
    of the next one does not store the message twice."""
    settings = context.settings
    done = {} if done is None else done
    trimmed = trim_trailing_silence(pcm)
    seconds = len(trimmed) / 16000
    minimum = settings.voicemail.min_record_time
    if seconds < minimum:
        return f"dropped: {seconds:.1f} s is shorter than {minimum:g} s"
    if settings.drop_silent and is_silent(trimmed):
        return "dropped: only silence"
    wav = write_wav(trimmed)
    said = []
    name: str | None = None
    if request.mode in ("box", "both"):
        name = done.get("stored")
        if name is None:
            name = await context.store.put_message(
                request.domain,
                request.user,
                wav,
                sender=request.sender,
                received_at=answered_at,
            )
            done["stored"] = name
            if remember is not None:
                await remember(done)
        said.append(f"stored as {name}")
    if request.mode in ("voicemail", "both") and request.email and "emailed" in done:
        said.append(f"email queued as {done['emailed']}")
    elif request.mode in ("voicemail", "both") and request.email:
        variables = {
            "user": request.usr or request.user,
            "domain": request.dom or request.domain,
            "uid": request.uid or "",
            "did": request.did or "",
            "email": request.email,
            "sender": request.sender,
            "from": request.sender,
            "ts": str(answered_at),
            "vmsg_length": f"{seconds:.2f}",
            **{k: request.extras.get(k, "") for k in settings.email.extra_variables},
        }
        template = select_template(context.templates, request.did, request.language)
        message = build_email(
            template.render(variables),
            wav,
            f"{name or answered_at}.wav",
            sent_at=time.time(),
            id_domain=request.domain,
        )
        job = await context.outbox.submit(
            message, mailbox=f"{request.user}@{request.domain}", call_id=call_id
        )
        done["emailed"] = job
        if remember is not None:
            await remember(done)
        said.append(f"email queued as {job}")
    return f"{seconds:.1f} s message " + ", ".join(said)
