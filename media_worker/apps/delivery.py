"""A recording becomes a message: stored and/or emailed per the call's mode.

Used when a voicemail call ends and for the journals redelivery tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from media_worker import transcode
from media_worker.apps.context import AppContext
from media_worker.apps.params import AppRequest
from media_worker.audio import is_silent, trim_trailing_silence, write_wav
from media_worker.config import Attachment
from media_worker.mail.message import AudioAttachment, build_email
from media_worker.mail.template import select_template

log = logging.getLogger("voicemail.mail")

Remember = Callable[[dict[str, str]], Awaitable[None]]
LINK_FORMAT = "mp3"  # what %audio_url% asks for when no audio is attached: plays everywhere


def audio_link(base: str | None, domain: str, user: str, name: str | None, fmt: str) -> str:
    """The message's audio in the HTTP API, or "" without an API or a stored message."""
    if not base or name is None:
        return ""
    path = "/".join(quote(part, safe="") for part in (domain, user, "messages", name))
    return f"{base.rstrip('/')}/api/v1/mailboxes/{path}/audio?format={fmt}"


async def attachment(
    wav: bytes, fmt: Attachment, stem: str, *, call_id: str, mailbox: str
) -> AudioAttachment | None:
    """The recording as configured; WAV, with a warning, if it cannot be converted: the
    email must not be lost over its attachment."""
    if fmt == "none":
        return None
    if fmt != "wav":
        try:
            data = await asyncio.to_thread(transcode.encode, wav, fmt)
        except (ValueError, RuntimeError, OSError, MemoryError) as exc:
            log.warning(
                "[%s] recording for %s not converted to %s (%s): attached as WAV",
                call_id, mailbox, fmt, exc,
            )  # fmt: skip
        else:
            return AudioAttachment(
                data, transcode.CONTENT_TYPES[fmt], f"{stem}.{transcode.EXTENSIONS[fmt]}"
            )
    return AudioAttachment(wav, transcode.CONTENT_TYPES["wav"], f"{stem}.wav")


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
        fmt = settings.email.attachment_for(request.domain, request.dom)
        mailbox = f"{request.user}@{request.domain}"
        link = audio_link(
            settings.audio_link_base,
            request.domain,
            request.user,
            name,
            LINK_FORMAT if fmt == "none" else fmt,
        )
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
            "audio_url": link,
        }
        template = select_template(context.templates, request.did, request.language)
        message = build_email(
            template.render(variables),
            await attachment(wav, fmt, name or str(answered_at), call_id=call_id, mailbox=mailbox),
            sent_at=time.time(),
            id_domain=request.domain,
        )
        job = await context.outbox.submit(message, mailbox=mailbox, call_id=call_id)
        done["emailed"] = job
        if remember is not None:
            await remember(done)
        said.append(f"email queued as {job}")
    return f"{seconds:.1f} s message " + ", ".join(said)
