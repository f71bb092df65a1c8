"""SEMS email templates: parsing, checks at load time, lookup, rendering, MIME."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

import media_worker
from media_worker.mail.message import AudioAttachment, build_email
from media_worker.mail.template import (
    TemplateError,
    load_templates,
    parse_template,
    select_template,
)
from storage.testing import make_wav

# Written the way SEMS' voicemail templates are: no space after some colons, a header:
# line with two headers separated by a literal \n, %% for a percent sign.
SEMS_STYLE = """subject:Voice message from: %from%
from:voicemail@%domain%
to:%email%
header:X-Content: Voicemail\\nX-Mailbox: %user%@%domain%

Hello %user%@%domain%,

%from% left a voice message for you (%vmsg_length% s, 100%% recorded).
"""
VARIABLES = {
    "user": "bob",
    "domain": "lab.example",
    "email": "bob@lab.example",
    "from": "Jürgen <sip:juergen@lab.example>",
    "sender": "Jürgen",
    "uid": "",
    "did": "",
    "ts": "1700000000",
    "vmsg_length": "3.25",
}


def test_sems_style_template_renders() -> None:
    rendered = parse_template(SEMS_STYLE, "default.template").render(VARIABLES)
    assert rendered.subject == "Voice message from: Jürgen <sip:juergen@lab.example>"
    assert (rendered.sender, rendered.to) == ("voicemail@lab.example", "bob@lab.example")
    assert rendered.headers == (("X-Content", "Voicemail"), ("X-Mailbox", "bob@lab.example"))
    assert "(3.25 s, 100% recorded)" in rendered.body
    assert rendered.body.startswith("Hello bob@lab.example,\n")


def test_shipped_default_template() -> None:
    templates = load_templates(Path(media_worker.__file__).parent / "templates")
    rendered = templates["default"].render(VARIABLES)
    assert rendered.subject == "New voice message from Jürgen"
    assert rendered.sender == "Voicemail <voicemail@lab.example>"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (SEMS_STYLE.replace("%user%@%domain%,", "%mailbox%,"), "t.template:6: unknown variable %mailbox%"),
        (SEMS_STYLE.replace("to:%email%", "to:%email"), "t.template:3: unterminated %variable%"),
        (SEMS_STYLE.replace("subject:", "topic:"), "t.template:1: expected subject:, to:, from: or header:"),
        (SEMS_STYLE.replace("subject:Voice message from: %from%\n", ""), "t.template:1: missing or empty 'subject:' line"),
        ("subject: s\nfrom: f\nto: t\n", "t.template:5: empty body"),
        ("subject: s\nfrom: f\nto: t", "t.template:3: no empty line between the header lines and the body"),
    ],
)  # fmt: skip
def test_errors_name_file_and_line(text: str, error: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(text, "t.template")
    assert str(caught.value).startswith(error)


def test_configured_extra_variables() -> None:
    text = SEMS_STYLE.replace("Hello", "Hello from %company%:")
    with pytest.raises(TemplateError, match="unknown variable %company%"):
        parse_template(text, "t.template")
    rendered = parse_template(text, "t.template", ["company"]).render(
        {**VARIABLES, "company": "ACME"}
    )
    assert "Hello from ACME:" in rendered.body


def test_lookup_order(tmp_path: Path) -> None:
    for name in ("default", "default_de", "7", "7_de"):
        (tmp_path / f"{name}.template").write_text(SEMS_STYLE.replace("Hello", f"[{name}]"))
    templates = load_templates(tmp_path)

    def picked(did: str | None, lng: str | None) -> str:
        return select_template(templates, did, lng).source.rsplit("/", 1)[1]

    assert picked("7", "de") == "7_de.template"
    assert picked("7", "en") == "7.template"
    assert picked("8", "de") == "default_de.template"
    assert picked(None, None) == "default.template"
    (tmp_path / "default.template").unlink()
    with pytest.raises(TemplateError, match="the default template is missing"):
        load_templates(tmp_path)


def test_header_injection_is_flattened() -> None:
    rendered = parse_template(SEMS_STYLE, "t").render({**VARIABLES, "from": "x\r\nBcc: evil@x"})
    assert "\n" not in rendered.subject
    assert rendered.subject == "Voice message from: x Bcc: evil@x"


def test_mime_message() -> None:
    rendered = parse_template(SEMS_STYLE, "t").render(VARIABLES)
    wav = make_wav(0.5)
    audio = AudioAttachment(wav, "audio/wav", "1700000000+juergen.wav")
    message = build_email(rendered, audio, sent_at=1700000000, id_domain="lab.example")
    parsed = email.message_from_bytes(message.as_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Voice message from: Jürgen <sip:juergen@lab.example>"
    assert parsed["X-Mailbox"] == "bob@lab.example"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert "Jürgen" in body.get_content()
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == "1700000000+juergen.wav"
    assert attachment.get_content() == wav
