"""The email itself: a UTF-8 text body and, unless configured away, the recording attached
(WAV as stored, or MP3 or Ogg/Opus)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from media_worker.mail.template import RenderedEmail

# Headers the template's own lines set; a header: line may not replace them.
_CORE = {"subject", "from", "to", "date", "message-id", "mime-version", "content-type"}


@dataclass(frozen=True)
class AudioAttachment:
    data: bytes
    content_type: str  # audio/wav, audio/mpeg, audio/ogg
    filename: str


def build_email(
    rendered: RenderedEmail,
    attachment: AudioAttachment | None,
    *,
    sent_at: float,
    id_domain: str,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = rendered.sender
    message["To"] = rendered.to
    message["Date"] = formatdate(sent_at, localtime=True)
    message["Message-ID"] = make_msgid("voicemail", domain=id_domain)
    for name, value in rendered.headers:
        if name.lower() not in _CORE:
            message[name] = value
    message.set_content(rendered.body, charset="utf-8")
    if attachment is not None:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message
