"""The recording with its email: WAV, MP3, Ogg/Opus or none, per domain, and the
%audio_url% link to the HTTP API."""

from __future__ import annotations

import asyncio
import email
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import soundfile
import yaml
from aiosmtpd.controller import Controller

import media_worker
from media_worker import transcode
from media_worker.apps.context import ServiceSettings
from media_worker.apps.delivery import LINK_FORMAT, audio_link, file_stem
from media_worker.apps.params import AppRequest
from media_worker.apps.service import VoicemailService
from media_worker.audio import read_wav
from media_worker.config import ConfigError, EmailConfig, EmailDomainConfig, parse_config
from media_worker.lab.layout import worker_yaml
from media_worker.mail.outbox import Outbox, SmtpSettings
from media_worker.mail.template import TemplateError, load_templates, parse_template
from media_worker.prompts import PromptLibrary
from storage import Storage, open_storage
from tests.support.procs import eventually, free_port
from tests.support.smtp import Inbox

TEMPLATES = Path(media_worker.__file__).parent / "templates"
ANSWERED = 1_700_000_000
LINK_LINE = "Listen to it in your browser:"
SECONDS = 2.0


def speech_like(seconds: float = SECONDS) -> bytes:
    """Loud enough not to count as silence, long enough to be kept."""
    n = np.arange(round(8000 * seconds))
    samples = (
        8000 * np.sin(2 * np.pi * 440 * n / 8000) * (1 + 0.5 * np.sin(2 * np.pi * 3 * n / 8000))
    )
    return np.rint(samples).astype("<i2").tobytes()


def ask(mode: str = "both", **fields: Any) -> AppRequest:
    values: dict[str, Any] = {
        "app": "voicemail", "user": "bob", "domain": "lab.example",
        "sender": '"Alice" <sip:alice@lab.example>', "mode": mode, "email": "bob@lab.example",
        "language": None, "typ": "vm", "pin": None, "dom": "lab.example",
    }  # fmt: skip
    values.update(fields)
    return AppRequest(**values)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with open_storage(f"fs://{tmp_path}/spool") as opened:
        yield opened


def service(
    tmp_path: Path, store: Storage, email_config: EmailConfig, link_base: str | None = None
) -> VoicemailService:
    (tmp_path / "outbox").mkdir(exist_ok=True)  # what Outbox.start makes; never started here
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(port=free_port(), timeout=5))
    settings = ServiceSettings(
        journal_dir=tmp_path / "journal", email=email_config, audio_link_base=link_base
    )
    return VoicemailService(settings, store, outbox, load_templates(TEMPLATES), PromptLibrary())


async def queued_email(
    tmp_path: Path,
    store: Storage,
    email_config: EmailConfig,
    request: AppRequest | None = None,
    link_base: str | None = None,
) -> EmailMessage:
    """Deliver a recording and read back the email the outbox holds (not started: the
    job stays on disk)."""
    app = service(tmp_path, store, email_config, link_base)
    outcome = await app.deliver(request or ask(), speech_like(), ANSWERED, "call-1")
    assert "email queued as" in outcome
    [eml] = (tmp_path / "outbox").glob("*.eml")
    parsed = email.message_from_bytes(eml.read_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert isinstance(text, str)
    return text


# ----- the attachment -----


async def test_the_default_attaches_the_stored_wav_as_sems_does(
    tmp_path: Path, store: Storage
) -> None:
    message = await queued_email(tmp_path, store, EmailConfig())
    [info] = await store.list_mailbox("lab.example", "bob")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == f"{file_stem(info.name)}.wav"
    stored = await store.get_message("lab.example", "bob", info.name)
    assert attachment.get_content() == stored.audio


@pytest.mark.parametrize(
    ("fmt", "content_type", "start"),
    [("mp3", "audio/mpeg", (b"ID3", b"\xff")), ("opus", "audio/ogg", (b"OggS",))],
)
async def test_compressed_attachments_have_their_type_name_and_the_recording(
    tmp_path: Path, store: Storage, fmt: str, content_type: str, start: tuple[bytes, ...]
) -> None:
    message = await queued_email(tmp_path, store, EmailConfig(attachment=fmt))  # type: ignore[arg-type]
    [info] = await store.list_mailbox("lab.example", "bob")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == content_type
    assert attachment.get_filename() == f"{file_stem(info.name)}.{fmt}"
    data = attachment.get_content()
    assert data.startswith(start)
    wav = (await store.get_message("lab.example", "bob", info.name)).audio
    assert len(data) < len(wav) / 4
    assert read_wav(transcode.normalise(data, max_seconds=10)).duration == pytest.approx(
        SECONDS, abs=0.1
    )


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("1700000000+sip:alice@lab.example", "1700000000+sip_alice@lab.example"),
        ("1700000000+J%C3%BCrgen <sip:j/x?>", "1700000000+J%C3%BCrgen__sip_j_x__"),
        ("x" * 300, "x" * 100),
        ("", "message"),
    ],
)
def test_the_file_name_is_one_every_system_saves_under(name: str, stem: str) -> None:
    assert file_stem(name) == stem


async def test_a_sender_with_a_colon_makes_a_plain_file_name(
    tmp_path: Path, store: Storage
) -> None:
    message = await queued_email(
        tmp_path, store, EmailConfig(attachment="mp3"), ask(sender="sip:alice@lab.example")
    )
    [info] = await store.list_mailbox("lab.example", "bob")
    assert ":" in info.name
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == info.name.replace(":", "_") + ".mp3"


async def test_none_sends_the_email_without_the_recording(tmp_path: Path, store: Storage) -> None:
    message = await queued_email(tmp_path, store, EmailConfig(attachment="none"))
    assert list(message.iter_attachments()) == []
    assert not message.is_multipart()
    assert "left you a voice message of 2.00 seconds" in body_of(message)


async def test_email_only_mode_attaches_under_the_call_time(tmp_path: Path, store: Storage) -> None:
    message = await queued_email(tmp_path, store, EmailConfig(attachment="mp3"), ask("voicemail"))
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"{ANSWERED}.mp3"
    assert await store.list_mailbox("lab.example", "bob") == []


DOMAINS = {
    "lab.example": EmailDomainConfig(attachment="none"),
    "d42": EmailDomainConfig(attachment="opus"),
    "quiet.example": EmailDomainConfig(),  # listed without an override: the default
}


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        ({}, "none"),  # the mailbox's domain
        ({"domain": "d42", "did": "d42"}, "opus"),  # the did wins over dom
        ({"domain": "d7", "did": "d7"}, "none"),  # a did not listed: dom is tried
        ({"domain": "other.example", "dom": "other.example"}, "mp3"),
        ({"domain": "quiet.example", "dom": "quiet.example"}, "mp3"),
        ({"domain": "Lab.EXAMPLE", "dom": "Lab.EXAMPLE"}, "none"),  # DNS names: any case
        ({"domain": "D42", "did": "D42"}, "opus"),
    ],
)
def test_a_domain_overrides_the_attachment(request_fields: dict[str, str], expected: str) -> None:
    config = EmailConfig(attachment="mp3", domains=DOMAINS)
    request = ask(**request_fields)
    assert config.attachment_for(request.domain, request.dom) == expected


async def test_a_domain_override_reaches_the_email(tmp_path: Path, store: Storage) -> None:
    config = EmailConfig(attachment="mp3", domains={"d42": EmailDomainConfig(attachment="opus")})
    message = await queued_email(tmp_path, store, config, ask(domain="d42", did="d42"))
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/ogg"


async def test_a_recording_that_cannot_be_converted_goes_as_wav_with_a_warning(
    tmp_path: Path,
    store: Storage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(wav: bytes, fmt: str) -> bytes:
        raise transcode.AudioFormatError("encoder out of order")

    monkeypatch.setattr(transcode, "encode", broken)
    with caplog.at_level(logging.WARNING, "voicemail.mail"):
        message = await queued_email(tmp_path, store, EmailConfig(attachment="mp3"))
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert str(attachment.get_filename()).endswith(".wav")
    assert caplog.messages == [
        "[call-1] recording for bob@lab.example not converted to mp3 (encoder out of order): attached as WAV"
    ]


def test_a_worker_loads_the_audio_libraries_only_to_convert() -> None:
    code = (
        "import sys, media_worker.serve, media_worker.apps.delivery; "
        "print(sorted({'numpy', 'soundfile'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# ----- %audio_url% -----


async def test_the_link_points_at_the_messages_audio_in_the_api(
    tmp_path: Path, store: Storage
) -> None:
    request = ask(sender="Jürgen <sip:j/ü?#@lab.example>")
    message = await queued_email(
        tmp_path, store, EmailConfig(attachment="mp3"), request, "https://vm.example.com/"
    )
    [info] = await store.list_mailbox("lab.example", "bob")
    [line] = [line for line in body_of(message).splitlines() if line.startswith(LINK_LINE)]
    url = urlsplit(line.removeprefix(LINK_LINE).strip())
    assert (url.scheme, url.netloc, url.query) == ("https", "vm.example.com", "format=mp3")
    segments = url.path.split("/")
    assert segments[:6] == ["", "api", "v1", "mailboxes", "lab.example", "bob"]
    assert (segments[6], segments[8]) == ("messages", "audio")
    assert unquote(segments[7]) == info.name  # one segment, whatever the sender was
    assert len(segments) == 9


@pytest.mark.parametrize(("fmt", "asked"), [("opus", "opus"), ("wav", "wav"), ("none", "mp3")])
async def test_the_link_asks_for_the_attachments_format_or_mp3(
    tmp_path: Path, store: Storage, fmt: str, asked: str
) -> None:
    config = EmailConfig(attachment=fmt)  # type: ignore[arg-type]
    message = await queued_email(tmp_path, store, config, link_base="http://127.0.0.1:8080")
    [line] = [line for line in body_of(message).splitlines() if line.startswith(LINK_LINE)]
    assert line.endswith(f"/audio?format={asked}")
    assert asked == (LINK_FORMAT if fmt == "none" else fmt)


def test_no_link_without_an_api_or_a_stored_message() -> None:
    assert audio_link(None, "lab.example", "bob", "1700000000+x", "mp3") == ""
    assert audio_link("", "lab.example", "bob", "1700000000+x", "mp3") == ""
    assert audio_link("http://127.0.0.1:8080", "lab.example", "bob", None, "mp3") == ""
    assert (
        audio_link("http://127.0.0.1:8080/", "lab.example", "bob", "17+a b", "mp3")
        == "http://127.0.0.1:8080/api/v1/mailboxes/lab.example/bob/messages/17%2Ba%20b/audio?format=mp3"
    )


async def test_without_an_api_the_link_line_is_left_out(tmp_path: Path, store: Storage) -> None:
    body = body_of(await queued_email(tmp_path, store, EmailConfig()))
    assert LINK_LINE not in body
    assert "left you a voice message of 2.00 seconds.\n\n-- \nYour voicemail system" in body


async def test_an_emailed_but_unstored_message_has_no_link(tmp_path: Path, store: Storage) -> None:
    message = await queued_email(
        tmp_path, store, EmailConfig(), ask("voicemail"), "https://vm.example.com"
    )
    assert LINK_LINE not in body_of(message)


BODY_TEMPLATE = """subject: Message %audio_url%
from: vm@%domain%
to: %email%

Before
Listen: %audio_url% (%vmsg_length% s)
  %user% %audio_url%
After %user%
"""


def test_only_the_template_lines_that_use_an_empty_link_are_left_out() -> None:
    template = parse_template(BODY_TEMPLATE, "t")
    variables = {"domain": "d", "email": "e@d", "vmsg_length": "3.00", "user": "bob\nLine"}
    empty = template.render({**variables, "audio_url": ""})
    # A newline inside a value does not make a template line of its own.
    assert empty.body == "Before\nAfter bob\nLine\n"
    assert empty.subject == "Message"
    full = template.render({**variables, "audio_url": "http://x/a"})
    assert (
        full.body
        == "Before\nListen: http://x/a (3.00 s)\n  bob\nLine http://x/a\nAfter bob\nLine\n"
    )
    assert full.subject == "Message http://x/a"


def test_an_unknown_variable_is_still_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "default.template").write_text(
        BODY_TEMPLATE.replace("%audio_url%", "%audio_link%", 1)
    )
    with pytest.raises(
        TemplateError,
        match=r"default\.template:1: unknown variable %audio_link% \(known: audio_url, did,",
    ):
        load_templates(tmp_path)


# ----- configuration -----


def test_the_email_settings_parse_and_name_the_bad_key() -> None:
    config = parse_config(
        {"email": {"attachment": "opus", "domains": {"a.example": {"attachment": "none"}}}}
    )
    assert config.email.attachment == "opus"
    assert config.email.domains == {"a.example": EmailDomainConfig(attachment="none")}
    for data, message in [
        (
            {"attachment": "flac"},
            r"^email\.attachment: expected one of wav, mp3, opus, none, got 'flac'$",
        ),
        (
            {"domains": {"a.example": {"attachment": "ogg"}}},
            r"^email\.domains\.a\.example\.attachment: expected one of",
        ),
        (
            {"domains": {"a.example": {"attach": "mp3"}}},
            r"^email\.domains\.a\.example\.attach: unknown key \(known: attachment\)$",
        ),
        ({"domains": ["a.example"]}, r"^email\.domains: expected a mapping, got \['a\.example'\]$"),
        ({"domains": {" a.example": {}}}, r"^email\.domains: ' a\.example' is not a domain$"),
        ({"domains": {7: {}}}, r"^email\.domains: expected text, got 7$"),
        ({"extra_variables": ["audio_url"]}, r"^email\.extra_variables: audio_url is the link"),
        (
            {"domains": {"a.example": {}, "A.example": {}}},
            r"^email\.domains: 'a\.example' and 'A\.example' are the same domain$",
        ),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config({"email": data})


@pytest.mark.parametrize(
    ("email_config", "key", "fmt"),
    [
        ({"attachment": "mp3"}, "email.attachment", "mp3"),
        (
            {"domains": {"a.example": {"attachment": "opus"}}},
            "email.domains.a.example.attachment",
            "opus",
        ),
    ],
)
def test_a_format_this_libsndfile_cannot_write_is_a_start_up_error(
    monkeypatch: pytest.MonkeyPatch, email_config: dict[str, Any], key: str, fmt: str
) -> None:
    # As with a system libsndfile older than 1.1: no MP3, no Opus.
    monkeypatch.setattr(soundfile, "available_formats", lambda: {"WAV": "WAV (Microsoft)"})
    monkeypatch.setattr(soundfile, "available_subtypes", lambda fmt=None: {"VORBIS": "Vorbis"})
    assert transcode.unwritable(["wav", "mp3", "opus"]) == ["mp3", "opus"]
    with pytest.raises(
        ConfigError,
        match=rf"^{re.escape(key)}: {fmt} cannot be written here: soundfile uses libsndfile {re.escape(transcode.library_version())}, which lacks it",
    ):
        parse_config({"email": email_config})
    assert parse_config({"email": {"attachment": "wav"}}).email.attachment == "wav"


def test_this_machines_libsndfile_writes_every_format() -> None:
    assert transcode.unwritable(["wav", "mp3", "opus"]) == []


def test_the_lab_mails_mp3() -> None:
    text = worker_yaml(
        data_dir=Path("/d"), host="127.0.0.1", port=5080, rtp_ports=(20000, 20100),
        spool=Path("/s"), smtp_port=2525, prompts=None, mwi_proxy=None,
    )  # fmt: skip
    assert parse_config(yaml.safe_load(text)).email.attachment == "mp3"


# ----- through a real SMTP server -----


@pytest.mark.integration
async def test_an_mp3_attachment_reaches_the_smtp_server(tmp_path: Path, store: Storage) -> None:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(port=port, timeout=5), backoff=(0.2,))
    settings = ServiceSettings(
        journal_dir=tmp_path / "journal", email=EmailConfig(attachment="mp3"),
        audio_link_base="http://127.0.0.1:8080",
    )  # fmt: skip
    app = VoicemailService(settings, store, outbox, load_templates(TEMPLATES), PromptLibrary())
    await outbox.start()
    try:
        await app.deliver(ask(), speech_like(), ANSWERED, "call-1")
        await eventually(lambda: bool(inbox.messages))
    finally:
        await outbox.stop()
        await asyncio.to_thread(controller.stop)
    parsed = email.message_from_bytes(inbox.messages[0], policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "audio/mpeg"
    assert attachment.get_content_disposition() == "attachment"
    pcm = read_wav(transcode.normalise(attachment.get_content(), max_seconds=10))
    assert pcm.duration == pytest.approx(SECONDS, abs=0.1)
    assert "http://127.0.0.1:8080/api/v1/mailboxes/lab.example/bob/messages/" in body_of(parsed)
