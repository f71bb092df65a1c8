"""The email itself: a UTF-8 text body and the recording as an audio/wav attachment."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from media_worker.mail.template import RenderedEmail

# Headers the template's own lines set; a header: line may not replace them.
_CORE = {"subject", "from", "to", "date", "message-id", "mime-version", "content-type"}


def build_email(
    rendered: RenderedEmail,
    audio: bytes,
    attachment_name: str,
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
    message.add_attachment(audio, maintype="audio", subtype="wav", filename=attachment_name)
    return message
