"""SEMS' own voicemail templates (tests/data/sems/, see ORIGIN there), loaded unchanged."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from media_worker.mail.message import AudioAttachment, build_email
from media_worker.mail.template import load_templates, parse_template, select_template
from storage.testing import make_wav

SEMS = Path(__file__).parent / "data" / "sems"
VARIABLES = {
    "user": "bob",
    "domain": "lab.example",
    "email": "bob@lab.example",
    "from": '"Alice" <sip:alice@lab.example>',
    "sender": '"Alice" <sip:alice@lab.example>',
    "uid": "",
    "did": "",
    "ts": "1700000000",
    "vmsg_length": "4.20",
}
FOOTER = (
    "Thank you for using <your domain>'s Voicemail.\n\n"
    "Your voicemail system.\n\n"
    "-------------------------------------------------------------\n"
    "This message was created by <your domain>'s voicemail system.\n"
    "Please review www.<your domain> for more information.\n"
    "-------------------------------------------------------------\n"
)


def test_sems_default_template_renders_unchanged() -> None:
    templates = load_templates(SEMS)
    assert sorted(templates) == ["default"]  # the .sample file is not a template name
    template = select_template(templates, did=None, language="de")  # falls back to default
    rendered = template.render(VARIABLES)
    assert rendered.subject == 'Voice message from: "Alice" <sip:alice@lab.example>'
    assert rendered.sender == "voicemail@lab.example"
    assert rendered.to == "bob@lab.example"
    assert rendered.headers == (("X-Content", "Voicemail"),)
    assert rendered.body == (
        "Hello bob@lab.example,\n\n"
        '"Alice" <sip:alice@lab.example> left a voice message for you.\n\n' + FOOTER
    )


def test_sems_sample_template_with_two_headers_and_length() -> None:
    text = (SEMS / "default.template.sample").read_text("utf-8")
    rendered = parse_template(text, "default.template.sample").render(VARIABLES)
    assert rendered.headers == (
        ("X-Content", "Voicemail"),
        ("X-Voicemail-Sender", '"Alice" <sip:alice@lab.example>'),
    )
    assert "\n\nThe message is 4.20s long.\n\n" in rendered.body


def test_sems_default_template_as_mime() -> None:
    rendered = load_templates(SEMS)["default"].render(VARIABLES)
    wav = make_wav(0.5)
    audio = AudioAttachment(wav, "audio/wav", "1700000000.wav")
    message = build_email(rendered, audio, sent_at=1e9, id_domain="lab.example")
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == rendered.subject
    assert (parsed["From"], parsed["To"]) == ("voicemail@lab.example", "bob@lab.example")
    assert parsed["X-Content"] == "Voicemail"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content() == rendered.body
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content() == wav
