"""A recording becomes a message: stored and/or emailed per the call's mode.

Used when a voicemail call ends and for the journals redelivery tries again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from media_worker.apps.context import AppContext
from media_worker.apps.params import AppRequest
from media_worker.audio import is_silent, trim_trailing_silence, write_wav
from media_worker.config import Attachment
from media_worker.mail.message import AudioAttachment, build_email
from media_worker.mail.template import select_template

log = logging.getLogger("voicemail.mail")

Remember = Callable[[dict[str, str]], Awaitable[None]]
LINK_FORMAT = "mp3"  # what %audio_url% asks for when no audio is attached: plays everywhere
_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=%-]")
MAX_STEM = 100


def audio_link(base: str | None, domain: str, user: str, name: str | None, fmt: str) -> str:
    """The message's audio in the HTTP API, or "" without an API or a stored message."""
    if not base or name is None:
        return ""
    path = "/".join(quote(part, safe="") for part in (domain, user, "messages", name))
    return f"{base.rstrip('/')}/api/v1/mailboxes/{path}/audio?format={fmt}"


def file_stem(name: str) -> str:
    """A message name as the attachment's file name: what Windows, macOS and phones all
    save under (a stored name may hold the sender's ':', '/' or '?')."""
    return _UNSAFE.sub("_", name)[:MAX_STEM] or "message"


async def attachment(
    wav: bytes, fmt: Attachment, name: str, *, call_id: str, mailbox: str
) -> AudioAttachment | None:
    """The recording as configured; WAV, with a warning, if it cannot be converted: the
    email must not be lost over its attachment."""
    stem = file_stem(name)
    if fmt == "none":
        return None
    if fmt != "wav":
        try:
            data, content_type, extension = await asyncio.to_thread(_encode, wav, fmt)
        except (ValueError, RuntimeError, OSError, MemoryError) as exc:
            log.warning(
                "[%s] recording for %s not converted to %s (%s): attached as WAV",
                call_id, mailbox, fmt, exc,
            )  # fmt: skip
        else:
            return AudioAttachment(data, content_type, f"{stem}.{extension}")
    return AudioAttachment(wav, "audio/wav", f"{stem}.wav")


def _encode(wav: bytes, fmt: str) -> tuple[bytes, str, str]:
    # Imported here, in the converting thread: numpy and libsndfile would cost a worker
    # that attaches WAV 14 MB, and loading them in the event loop would stall its calls.
    from media_worker import transcode

    return transcode.encode(wav, fmt), transcode.CONTENT_TYPES[fmt], transcode.EXTENSIONS[fmt]


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
