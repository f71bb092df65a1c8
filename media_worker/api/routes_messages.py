"""``/mailboxes/{domain}/{user}/messages``: list, fetch audio, mark, delete."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from media_worker import transcode
from media_worker.api.access import Mailbox, MailboxAccess
from media_worker.api.models import MessageList, MessagePatch, Problem
from media_worker.api.ranges import RangeNotSatisfiable, parse_range
from media_worker.api.state import ApiState, api_state, path_segment
from storage.model import MessageInfo, estimated_duration

# JSON string literal with every non-ASCII character escaped (the C encoder json.dumps
# uses): sender texts may hold anything, even lone surrogates from a SEMS file name.
json_text: Callable[[str], str] = encode_basestring_ascii
log = logging.getLogger("voicemail.api")
FORMATS = ", ".join(transcode.CONTENT_TYPES)
router = APIRouter(tags=["messages"])

REFUSALS: dict[int | str, dict[str, object]] = {
    400: {"model": Problem, "description": "a bad identity value or message name"},
    401: {"model": Problem, "description": "no or wrong credentials"},
    403: {"model": Problem, "description": "not this principal's mailbox"},
    429: {"model": Problem, "description": "locked out after failed logins (Retry-After)"},
    503: {"model": Problem, "description": "the store or the database is unreachable"},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "no such message"}
}
BASE = "/mailboxes/{domain}/{user}/messages"


def rfc3339(unix: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def message_json(info: MessageInfo, audio_base: str) -> str:
    """One message of a listing as JSON text; ``audio_base`` is the URL of the mailbox's
    messages. Written directly rather than through dicts and json.dumps, which took
    most of a 10,000-message listing's time (bench/README.md)."""
    duration = info.duration if info.duration is not None else estimated_duration(info.size)
    url = json_text(f"{audio_base}/{path_segment(info.name)}/audio")
    return (
        f'{{"name":{json_text(info.name)},"new":{"true" if info.new else "false"},'
        f'"received_at":"{rfc3339(info.received_at)}","received_at_unix":{info.received_at:d},'
        f'"sender":{json_text(info.sender)},"duration_s":{round(duration, 3)!r},'
        f'"size":{info.size:d},"audio_url":{url}}}'
    )


def listing_tag(listing: list[MessageInfo]) -> str:
    """An entity tag that changes whenever the listing does (a message added, removed,
    marked): a page polling with If-None-Match gets 304 while nothing changed."""
    digest = hashlib.blake2b(digest_size=16)
    for info in listing:
        digest.update(f"{info.name}\0{info.new:d}{info.size}\n".encode("utf-8", "surrogatepass"))
    return f'"{digest.hexdigest()}"'


@router.get(BASE, response_model=MessageList, responses=REFUSALS)
async def list_messages(
    request: Request,
    box: MailboxAccess,
    folder: Annotated[
        Literal["new", "saved"] | None, Query(description="only new or only saved ones")
    ] = None,
) -> Response:
    """The mailbox's messages, newest first."""
    state = api_state(request)
    listing = await state.store.list_mailbox(box.store_domain, box.store_user)
    if folder is not None:
        wanted = folder == "new"
        listing = [info for info in listing if info.new is wanted]
    listing.sort(key=lambda info: (info.received_at, info.name), reverse=True)
    tag = listing_tag(listing)
    if none_match(request.headers.get("if-none-match", ""), tag):
        return Response(status_code=304, headers={"ETag": tag})
    base = state.url("mailboxes", box.domain, box.user, "messages")
    body = '{"messages":[' + ",".join([message_json(info, base) for info in listing]) + "]}"
    return Response(body.encode("ascii"), media_type="application/json", headers={"ETag": tag})


def none_match(header: str, tag: str) -> bool:
    """Whether an If-None-Match header names ``tag`` (or ``*``), weakly compared as RFC 9110
    asks for GET: a listing that did not change is answered 304."""
    for candidate in header.split(","):
        candidate = candidate.strip().removeprefix("W/")
        if candidate in ("*", tag.removeprefix("W/")):
            return True
    return False


def file_safe(text: str) -> str:
    """``text`` for a Content-Disposition file name: ASCII letters, digits and . _ -."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in text)


def download_name(box: Mailbox, info: MessageInfo, ext: str) -> str:
    stamp = datetime.fromtimestamp(info.received_at, UTC).strftime("%Y%m%d-%H%M%S")
    return f"voicemail-{file_safe(box.user)}-{stamp}.{ext}"


async def converted(
    state: ApiState, wav: bytes, fmt: str, key: tuple[str, ...] | None = None
) -> bytes:
    """``wav`` in ``fmt``; ``key`` names the audio for the cache of recent encodings."""
    if fmt == "wav":
        return wav
    # The digest, not the name alone: a name freed by a deletion may come back.
    digest = hashlib.blake2b(wav, digest_size=16).hexdigest()
    cache_key = (*key, digest, fmt) if key is not None else None
    if cache_key is not None and (hit := state.encoded.get(cache_key)) is not None:
        return hit
    # CPU bound: a few at once, a bounded queue, one encoding for a seeking player's
    # parallel Range requests.
    data = await state.conversions.run(cache_key, lambda: transcode.encode(wav, fmt))
    if cache_key is not None:
        state.encoded.put(cache_key, data)
    return data


def audio_tag(data: bytes) -> str:
    """A strong entity tag of the bytes served: an encoding made again (Opus streams get a
    new serial number each time) has another one."""
    return f'"{hashlib.blake2b(data, digest_size=16).hexdigest()}"'


def ranged(request: Request, data: bytes, headers: dict[str, str], media_type: str) -> Response:
    """``data`` whole (200) or the byte range the request asks for (206, or 416), with
    its entity tag. A client that already has these bytes (If-None-Match) gets 304. A
    range whose If-Range names other bytes (another encoding, or a date: we send no
    Last-Modified) is answered with the whole body, as RFC 9110 section 13.1.5 asks, so a
    seeking player never joins pieces of two different files."""
    tag = audio_tag(data)
    headers = {**headers, "Accept-Ranges": "bytes", "ETag": tag}
    if none_match(request.headers.get("if-none-match", ""), tag):
        return Response(status_code=304, headers={"ETag": tag, "Accept-Ranges": "bytes"})
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if asked is not None and if_range is not None and if_range.strip() != tag:
        asked = None  # strong comparison: a weak tag never matches
    try:
        wanted = parse_range(asked, len(data))
    except RangeNotSatisfiable as exc:
        headers["Content-Range"] = f"bytes */{len(data)}"
        raise HTTPException(416, str(exc), headers=headers) from None
    if wanted is None:
        return Response(data, media_type=media_type, headers=headers)
    headers["Content-Range"] = wanted.content_range(len(data))
    body = data[wanted.start : wanted.end + 1]
    return Response(body, status_code=206, media_type=media_type, headers=headers)


@router.get(
    BASE + "/{name}/audio",
    responses={
        **REFUSALS,
        **NOT_FOUND,
        200: {"content": {t: {} for t in ("audio/wav", "audio/mpeg", "audio/ogg")}},
        206: {"description": "the byte range asked for"},
        304: {"description": "the entity tag in If-None-Match is still the audio's"},
        416: {"model": Problem, "description": "the range is outside the audio"},
        422: {"model": Problem, "description": "a format this server cannot produce"},
    },
    response_class=Response,
)
async def message_audio(
    request: Request,
    box: MailboxAccess,
    name: str,
    format: Annotated[str, Query(description="wav, mp3 or opus")] = "wav",
) -> Response:
    """The message's audio. Fetching it does not mark the message read."""
    if format not in transcode.CONTENT_TYPES:
        raise HTTPException(422, f"format {format!r}: expected one of {FORMATS}")
    state = api_state(request)
    message = await state.store.get_message(box.store_domain, box.store_user, name)
    try:
        key = (box.store_domain, box.store_user, name)
        data = await converted(state, message.audio, format, key)
    except transcode.AudioFormatError as exc:
        log.warning("api: %s message %s: cannot convert to %s: %s", box, name, format, exc)
        raise HTTPException(422, f"cannot convert this message to {format}: {exc}") from None
    filename = download_name(box, message.info, transcode.EXTENSIONS[format])
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return ranged(request, data, headers, transcode.CONTENT_TYPES[format])


@router.patch(BASE + "/{name}", status_code=204, responses={**REFUSALS, **NOT_FOUND})
async def patch_message(
    request: Request, box: MailboxAccess, name: str, change: MessagePatch
) -> Response:
    """Mark the message read (``{"new": false}``) or new again (``{"new": true}``)."""
    state = api_state(request)
    store = state.store
    if change.new:
        await store.mark_unread(box.store_domain, box.store_user, name)
    else:
        await store.mark_read(box.store_domain, box.store_user, name)
    await state.changed(f"{box} {name}")
    flag = "new" if change.new else "read"
    log.info("api: %s marked %s %s by %s", box, name, flag, box.principal)
    return Response(status_code=204)


@router.delete(BASE + "/{name}", status_code=204, responses={**REFUSALS, **NOT_FOUND})
async def delete_message(request: Request, box: MailboxAccess, name: str) -> Response:
    """Delete the message."""
    state = api_state(request)
    await state.store.delete_message(box.store_domain, box.store_user, name)
    await state.changed(f"{box} {name}")
    log.info("api: %s deleted %s by %s", box, name, box.principal)
    return Response(status_code=204)
