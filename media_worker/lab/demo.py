"""``voicemail lab demo``: alice leaves bob a spoken message, bob listens on 1000.

Everything goes the way a real call does: baresip phones registered with digest auth at
the lab's Kamailio, rtpengine in the media path, the worker answering, the SMTP catcher
receiving the email."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from media_worker.lab.layout import DOMAIN, USERS, Lab
from media_worker.lab.phone import Phone
from storage import MailboxNotFound, MessageInfo, open_storage

MESSAGE_TEXT = "Hi Bob, this is Alice. The voicemail lab works. Please call me back."
GREETING_SECONDS = 9  # the caller stays silent through the greeting and the beep


class DemoError(Exception):
    pass


def _sox(*args: str) -> None:
    subprocess.run(["sox", *args], check=True, capture_output=True)


def make_audio(directory: Path) -> tuple[Path, Path]:
    """alice's microphone (silence through the greeting, then speech) and bob's (silence)."""
    directory.mkdir(parents=True, exist_ok=True)
    spoken = directory / "alice-espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), MESSAGE_TEXT], check=True)
    alice = directory / "alice-says.wav"
    _sox(str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(alice),
         "pad", str(GREETING_SECONDS), "1")  # fmt: skip
    bob = directory / "bob-silence.wav"
    _sox("-n", "-r", "8000", "-c", "1", "-b", "16", str(bob), "trim", "0", "25")
    return alice, bob


def mailbox_listing(spool: Path, user: str, domain: str = DOMAIN) -> list[MessageInfo]:
    """A mailbox of an fs spool, oldest first ([] while it does not exist yet)."""

    async def listing() -> list[MessageInfo]:
        async with open_storage(f"fs://{spool}") as store:
            try:
                return await store.list_mailbox(domain, user)
            except MailboxNotFound:
                return []

    return asyncio.run(listing())


def api_messages(lab: Lab, user: str, domain: str = DOMAIN) -> list[dict[str, object]]:
    """A mailbox's message list as the HTTP API gives it, with the user's own SIP
    credentials (what the web page does)."""
    path = "/".join(urllib.parse.quote(part, safe="") for part in (domain, user))
    url = f"{lab.api_url}/api/v1/mailboxes/{path}/messages"
    token = base64.b64encode(f"{user}@{domain}:{USERS[user][0]}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http: only
            body = json.load(response)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        raise DemoError(f"GET {url}: {exc}") from exc
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        raise DemoError(f"GET {url}: no message list in the answer")
    return messages


def _wait(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DemoError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.2)


def run_demo(lab: Lab, say: Callable[[str], None]) -> None:
    demo_dir = lab.root / "demo"
    alice_audio, bob_audio = make_audio(demo_dir)
    before = {m.name for m in mailbox_listing(lab.spool, "bob")}
    mails_before = set(lab.mail.glob("*.eml"))

    say(f"alice calls bob@{DOMAIN} (bob has no phone registered: voicemail answers)")
    alice = Phone(alice_audio, account=lab.account("alice"))
    try:
        alice.start()
        alice.wait_for_log("200 OK", 10)
        alice.dial(f"sip:bob@{DOMAIN}")
        alice.wait_for_log("Call established", 20)
        say("  voicemail answered; alice listens to the greeting, then speaks:")
        say(f"  \u201c{MESSAGE_TEXT}\u201d")
        alice.wait_for_log("terminated", 60)
    finally:
        alice.stop()
        alice.cleanup()

    _wait(
        "the message in bob's box", lambda: len(mailbox_listing(lab.spool, "bob")) > len(before), 30
    )
    _wait("the email", lambda: set(lab.mail.glob("*.eml")) - mails_before != set(), 30)
    [message] = [m for m in mailbox_listing(lab.spool, "bob") if m.name not in before]
    [mail_path] = sorted(set(lab.mail.glob("*.eml")) - mails_before)
    say(f"bob's box has a new message: {message.name} ({message.size} bytes)")

    say("bob dials 1000 (his voicebox) and listens")
    bob = Phone(bob_audio, account=lab.account("bob", register=False))
    try:
        bob.start()
        bob.dial(f"sip:1000@{DOMAIN}")
        bob.wait_for_log("Call established", 20)
        time.sleep(16)  # "you have one new message", the message itself
        bob.hangup()
        bob.wait_for_log("terminated", 10)
        bob.stop()
        heard = demo_dir / "bob-heard.wav"
        shutil.copy(bob.dump("dec"), heard)
    finally:
        bob.stop()
        bob.cleanup()

    _print_mail(mail_path, say)
    say("")
    say("bob's mailbox now (voicemail mailbox list --storage fs://" + f"{lab.spool} {DOMAIN} bob):")
    for info in mailbox_listing(lab.spool, "bob"):
        flag = "new  " if info.new else "saved"
        say(f"  {flag} {info.name}  {info.size} bytes  from {info.sender}")
    say("")
    url = f"{lab.api_url}/api/v1/mailboxes/{DOMAIN}/bob/messages"
    say(f"the same list through the HTTP API (GET {url}, as bob@{DOMAIN}):")
    for item in api_messages(lab, "bob"):
        flag = "new  " if item.get("new") else "saved"
        say(
            f"  {flag} {item.get('name')}  {item.get('received_at')}  "
            f"{item.get('duration_s')} s  from {item.get('sender')}"
        )
    webhooks = sorted(lab.webhooks_dir.glob("*.json"))
    say("")
    say("where things are:")
    say(f"  the web page:         {lab.api_url}/ (bob@{DOMAIN}, password {USERS['bob'][0]})")
    say(f"  the recording:        {lab.spool / DOMAIN / 'bob' / (message.name + '.wav')}")
    say(f"  the email:            {mail_path}")
    say(f"  what alice said:      {alice_audio}")
    say(f"  what bob heard:       {heard}")
    say(f"  webhook deliveries:   {lab.webhooks_dir}/ ({len(webhooks)} so far)")
    say(f"  logs:                 {lab.log_dir}/")


def _print_mail(path: Path, say: Callable[[str], None]) -> None:
    mail = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(mail, EmailMessage)
    say("")
    say(f"the email bob received ({path.name}):")
    for header in ("From", "To", "Subject", "Date"):
        say(f"  {header}: {mail[header]}")
    body = mail.get_body(("plain",))
    if body is not None:
        for line in body.get_content().strip().splitlines():
            say(f"  | {line}")
    for part in mail.iter_attachments():
        say(f"  attachment: {part.get_filename()} ({part.get_content_type()})")
