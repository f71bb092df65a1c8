"""``/mailboxes/{domain}/{user}``: the mailbox, its greetings, its PIN and its settings."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from media_worker import transcode
from media_worker.api.access import Mailbox, MailboxAccess
from media_worker.api.models import MailboxOut, PinIn, Problem, Settings, SettingsPatch
from media_worker.api.routes_messages import FORMATS, REFUSALS, converted, file_safe, ranged
from media_worker.api.state import ApiState, api_state
from media_worker.apps.pin import PinError, check_new_pin, hash_pin
from media_worker.provisioning.provision import Preferences
from storage.errors import BadIdentity
from storage.identity import check_greeting_type
from storage.model import PinRecord, wav_duration

log = logging.getLogger("voicemail.api")
router = APIRouter(tags=["mailboxes"])
BASE = "/mailboxes/{domain}/{user}"
NO_GREETING: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "no greeting of this type"}
}
NO_ACCOUNT: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "no such subscriber in Kamailio's database"},
    501: {"model": Problem, "description": "no Kamailio database configured"},
}
EMPTY_SETTINGS: dict[str, str | None] = dict.fromkeys(
    ("mode", "email", "language", "greeting_type")
)


def _greeting_type(typ: str) -> str:
    try:
        return check_greeting_type(typ)
    except BadIdentity as exc:
        raise HTTPException(400, str(exc)) from None


async def _greetings(state: ApiState, box: Mailbox, typ: str | None) -> list[dict[str, object]]:
    types = dict.fromkeys([*state.config.greetings.types, *([typ] if typ else [])])
    found = []
    for name in types:
        data = await state.store.get_greeting(box.store_domain, box.store_user, name)
        if data is not None:
            found.append(
                {
                    "type": name,
                    "size": len(data),
                    "duration_s": wav_duration(data),
                    "audio_url": state.url("mailboxes", box.domain, box.user, "greetings", name),
                }
            )
    return found


@router.get(BASE, response_model=MailboxOut, responses=REFUSALS)
async def get_mailbox(request: Request, box: MailboxAccess) -> dict[str, object]:
    """Counts, greetings and settings of the mailbox."""
    state = api_state(request)
    counts = await state.store.count(box.store_domain, box.store_user)
    settings = box.account.settings() if box.account else EMPTY_SETTINGS
    return {
        "domain": box.domain,
        "user": box.user,
        "new": counts.new,
        "saved": counts.saved,
        "greetings": await _greetings(state, box, settings["greeting_type"]),
        "settings": settings,
    }


@router.get(
    BASE + "/greetings/{type}",
    response_class=Response,
    responses={**REFUSALS, **NO_GREETING, 200: {"content": {"audio/wav": {}}}},
)
async def get_greeting(
    request: Request,
    box: MailboxAccess,
    type: str,
    format: Annotated[str, Query(description="wav, mp3 or opus")] = "wav",
) -> Response:
    """The greeting's audio (8 kHz 16-bit mono WAV as stored, or converted)."""
    typ = _greeting_type(type)
    if format not in transcode.CONTENT_TYPES:
        raise HTTPException(422, f"format {format!r}: expected one of {FORMATS}")
    state = api_state(request)
    data = await state.store.get_greeting(box.store_domain, box.store_user, typ)
    if data is None:
        raise HTTPException(404, f"no greeting of type {typ!r}")
    try:
        body = await converted(state, data, format, (box.store_domain, box.store_user, typ))
    except transcode.AudioFormatError as exc:
        raise HTTPException(422, f"cannot convert this greeting to {format}: {exc}") from None
    filename = f"greeting-{file_safe(typ)}.{transcode.EXTENSIONS[format]}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return ranged(request, body, headers, transcode.CONTENT_TYPES[format])


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"greeting over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"greeting over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.put(
    BASE + "/greetings/{type}",
    status_code=204,
    responses={
        **REFUSALS,
        413: {"model": Problem, "description": "over the size or duration limit"},
        422: {"model": Problem, "description": "not audio this server can read"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "WAV, MP3 or Ogg/Opus, any rate and channels",
            "content": {t: {} for t in ("audio/wav", "audio/mpeg", "audio/ogg")},
        }
    },
)
async def put_greeting(request: Request, box: MailboxAccess, type: str) -> Response:
    """Store (or replace) the greeting, normalised to 8 kHz 16-bit mono WAV."""
    typ = _greeting_type(type)
    state = api_state(request)
    limits = state.config.greetings
    data = await _body(request, limits.max_bytes)
    if not data:
        raise HTTPException(422, "the request body is empty: send the audio file")
    try:
        async with state.conversions:
            wav = await asyncio.to_thread(transcode.normalise, data, max_seconds=limits.max_seconds)
    except transcode.AudioTooLong as exc:
        raise HTTPException(413, str(exc)) from None
    except transcode.AudioFormatError as exc:
        raise HTTPException(422, str(exc)) from None
    await state.store.put_greeting(box.store_domain, box.store_user, typ, wav)
    await state.changed(f"{box} greeting {typ}")
    log.info("api: %s greeting %s stored (%d bytes) by %s", box, typ, len(wav), box.principal)
    return Response(status_code=204)


@router.delete(BASE + "/greetings/{type}", status_code=204, responses={**REFUSALS, **NO_GREETING})
async def delete_greeting(request: Request, box: MailboxAccess, type: str) -> Response:
    """Remove the greeting; callers then hear the default one."""
    typ = _greeting_type(type)
    state = api_state(request)
    if not await state.store.delete_greeting(box.store_domain, box.store_user, typ):
        raise HTTPException(404, f"no greeting of type {typ!r}")
    await state.changed(f"{box} greeting {typ}")
    log.info("api: %s greeting %s deleted by %s", box, typ, box.principal)
    return Response(status_code=204)


@router.put(
    BASE + "/pin",
    status_code=204,
    responses={**REFUSALS, 422: {"model": Problem, "description": "not 4 to 16 digits"}},
)
async def put_pin(request: Request, box: MailboxAccess, body: PinIn) -> Response:
    """Set the voicebox PIN (stored hashed, as the voicebox checks it); clears a lockout."""
    try:
        stored = await asyncio.to_thread(hash_pin, check_new_pin(body.pin))
    except PinError as exc:
        raise HTTPException(422, str(exc)) from None
    await api_state(request).store.update_pin(
        box.store_domain, box.store_user, lambda record: PinRecord(stored)
    )
    log.info("api: %s PIN set by %s", box, box.principal)
    return Response(status_code=204)


@router.delete(BASE + "/pin", status_code=204, responses=REFUSALS)
async def delete_pin(request: Request, box: MailboxAccess) -> Response:
    """Remove the PIN: the voicebox then asks for none (unless the proxy passes one)."""
    await api_state(request).store.update_pin(
        box.store_domain, box.store_user, lambda record: PinRecord()
    )
    log.info("api: %s PIN cleared by %s", box, box.principal)
    return Response(status_code=204)


@router.patch(
    BASE + "/settings",
    response_model=Settings,
    responses={
        **REFUSALS,
        **NO_ACCOUNT,
        422: {"model": Problem, "description": "a value `voicemail user set` would refuse"},
    },
)
async def patch_settings(
    request: Request, box: MailboxAccess, change: SettingsPatch
) -> dict[str, str | None]:
    """Change mode, email, language or greeting type in usr_preferences; null removes
    one. The proxy reads them on the next call."""
    accounts = api_state(request).accounts
    if accounts is None:
        raise HTTPException(501, "settings live in Kamailio's database: set api.kamailio_db")
    if box.account is None:
        raise HTTPException(404, f"no subscriber {box} in Kamailio's database")
    given = change.model_dump(exclude_unset=True)
    fields = {"mode": "voicemail", "email": "email", "language": "lang"}
    fields["greeting_type"] = "vm_greeting_type"
    prefs = Preferences(**{fields[k]: (v if v is not None else "") for k, v in given.items()})
    await accounts.update(box.user, box.domain, prefs)
    log.info("api: %s settings %s changed by %s", box, ", ".join(sorted(given)), box.principal)
    account = await accounts.account(box.user, box.domain)
    return account.settings() if account else EMPTY_SETTINGS
