"""The web page in a real browser (headless Chromium): bob signs in with his SIP
credentials, sees the message alice left by a real call through Kamailio, plays it,
downloads it, deletes it, and his phone's message-waiting lamp follows each change, also
one made elsewhere (the page shows it without a reload); then he records a greeting
with the browser's (fake) microphone, uploads another, and changes his PIN and mode."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from selenium.webdriver.common.by import By

from media_worker.apps.pin import verify_pin
from media_worker.audio import read_wav
from media_worker.lab.layout import DOMAIN, USERS
from media_worker.provisioning import kamdb
from media_worker.provisioning.provision import parse_db_url
from storage import open_storage
from tests.e2e.conftest import PhoneFactory, StackFactory
from tests.e2e.test_calls import mailbox
from tests.e2e.test_mwi import mwi_phone  # noqa: F401 - a fixture this module uses
from tests.support.browser import PHONE_SIZE, Browser
from tests.support.procs import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
# Set to a directory (docs/img, say) to keep the screenshot the test takes.
SCREENSHOT_DIR = "VOICEMAIL_SCREENSHOT_DIR"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as started:
        yield started


def player(browser: Browser, element: str = "player") -> dict[str, Any]:
    state: dict[str, Any] = browser.js(
        "const a = document.getElementById(arguments[0]);"
        "return {ended: a.ended, time: a.currentTime, error: a.error && a.error.code,"
        " src: a.currentSrc.slice(0, 5)};",
        element,
    )
    return state


def played(state: dict[str, Any]) -> bool:
    """The audio element reached its end or played a second, without an error."""
    return state["error"] is None and (state["ended"] or state["time"] >= 1.0)


def rows(browser: Browser) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = browser.js(
        "return [...document.querySelectorAll('li.message')].map(li => ({"
        " name: li.dataset.name, new: li.dataset.new === 'true', text: li.textContent}));"
    )
    return found


def greeting(stack: Stack) -> bytes | None:
    async def get() -> bytes | None:
        async with open_storage(f"fs://{stack.spool}") as store:
            return await store.get_greeting(DOMAIN, "bob", "vm")

    return asyncio.run(get())


def pin_hash(stack: Stack) -> str | None:
    async def get() -> str | None:
        async with open_storage(f"fs://{stack.spool}") as store:
            return (await store.get_pin(DOMAIN, "bob")).hash

    return asyncio.run(get())


def preferences(stack: Stack) -> dict[str, str]:
    async def get() -> dict[str, str]:
        async with kamdb.connect(parse_db_url(stack.db_url)) as db:
            return dict((await kamdb.get_user(db, "bob", DOMAIN)).preferences)

    return asyncio.run(get())


def test_bob_plays_and_deletes_alices_message_in_the_browser_and_his_lamp_follows(
    make_stack: StackFactory,
    phone: PhoneFactory,
    mwi_phone: Any,  # noqa: F811 - the fixture imported above
    message_speech: Path,
    silence: Path,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack = make_stack(mwi=True, api=True)
    assert stack.api is not None
    bob, light = mwi_phone(stack, "bob", silence)

    def logs() -> str:
        return f"{stack.logs()}\n----- browser\n{browser.describe()}\n----- lamp {light.poll()}"

    wait_until(lambda: "NOTIFY sip:bob@" in stack.kamailio.log(), 15, logs)
    alice = phone(stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")  # bob's phone rings unanswered: voicemail
    alice.wait_for_log("Call established", 20)
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, logs)
    [message] = mailbox(stack, "bob")
    wait_until(lambda: light.last() == (True, 1, 0), 15, logs)

    # Sign in: a wrong password is refused in the page, the right one shows the box.
    browser.open(f"{stack.api.url}/")
    browser.type("login-user", f"bob@{DOMAIN}")
    browser.type("login-password", "not-bobs")
    browser.click("#login-submit")
    browser.wait(lambda: "Wrong" in browser.status())
    browser.type("login-password", USERS["bob"][0])
    browser.click("#login-submit")
    browser.wait(lambda: [r["name"] for r in rows(browser)] == [message.name])
    [row] = rows(browser)
    assert row["new"]
    assert "alice" in row["text"].lower()
    # A phone's screen: nothing wider than it.
    assert browser.js("return [window.innerWidth, document.documentElement.scrollWidth]") == [
        PHONE_SIZE[0],
        PHONE_SIZE[0],
    ]
    shot = browser.screenshot(tmp_path / "web-page.png")
    if os.environ.get(SCREENSHOT_DIR):
        shutil.copy(shot, Path(os.environ[SCREENSHOT_DIR]) / shot.name)

    # Play: the audio element plays the fetched audio; listening makes it saved, as on
    # the phone, and the lamp goes out.
    browser.click(f"li.message[data-name='{message.name}'] button[data-action=play]")
    browser.wait(lambda: played(player(browser)), 20)
    assert player(browser)["src"] == "blob:"
    assert browser.js("return document.getElementById('player').dataset.format") == "mp3"
    wait_until(lambda: light.last() == (False, 0, 1), 15, logs)
    assert not mailbox(stack, "bob")[0].new
    browser.wait(lambda: not rows(browser)[0]["new"])

    # Download: the MP3, under the name the server gives it.
    browser.click(f"li.message[data-name='{message.name}'] button[data-action=download]")
    browser.wait(lambda: len(browser.downloaded()) == 1)
    [download] = browser.downloaded()
    assert download.suffix == ".mp3"
    assert download.stat().st_size > 0

    # Mark it new again from the page: the lamp comes back on.
    browser.click(f"li.message[data-name='{message.name}'] button[data-action=unread]")
    wait_until(lambda: light.last() == (True, 1, 0), 15, logs)
    browser.wait(lambda: rows(browser)[0]["new"])

    # Marked read by another client: the page follows without a reload, and the lamp.
    url = f"{stack.api.url}/api/v1/mailboxes/{DOMAIN}/bob/messages/{quote(message.name, safe='')}"
    bobs = (f"bob@{DOMAIN}", USERS["bob"][0])
    assert httpx.patch(url, json={"new": False}, auth=bobs).status_code == 204
    browser.wait(lambda: not rows(browser)[0]["new"], 15)
    wait_until(lambda: light.last() == (False, 0, 1), 15, logs)

    # Delete: confirmed in a dialog, gone from the page, the store and the lamp.
    browser.click(f"li.message[data-name='{message.name}'] button[data-action=delete]")
    assert "alice" in browser.accept_dialog().lower()
    browser.wait(lambda: rows(browser) == [])
    wait_until(lambda: mailbox(stack, "bob") == [], 10, logs)
    wait_until(lambda: light.last() == (False, 0, 0), 15, logs)

    # A greeting from the microphone: recorded as PCM, sent as 8 kHz WAV, heard back.
    browser.click("#record")
    browser.wait(lambda: browser.js("return document.getElementById('record-time').textContent")
                 >= "0:02", 15)  # fmt: skip
    browser.click("#record")
    browser.wait(lambda: browser.js("return !document.getElementById('greeting-new').hidden"))
    browser.click("#greeting-save")
    browser.wait(lambda: greeting(stack) is not None)
    assert read_wav(greeting(stack) or b"").duration >= 1.5  # 8 kHz mono PCM, or it raises
    browser.wait(lambda: browser.status() == "Greeting saved.")
    browser.wait(lambda: browser.js("return !document.getElementById('greeting-play').disabled"))
    browser.click("#greeting-play")
    browser.wait(lambda: played(player(browser, "greeting-player")), 15)

    # An uploaded file of another rate and channel count replaces it, normalised.
    upload = tmp_path / "greeting-16k-stereo.wav"
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            "16000",
            "-c",
            "2",
            "-b",
            "16",
            str(upload),
            "synth",
            "1",
            "sine",
            "400",
        ],
        check=True,
    )
    browser.page.find_element(By.ID, "greeting-file").send_keys(str(upload))
    browser.wait(lambda: browser.js("return !document.getElementById('greeting-new').hidden"))
    browser.click("#greeting-save")
    browser.wait(lambda: abs(read_wav(greeting(stack) or b"").duration - 1.0) < 0.05)
    browser.wait(lambda: browser.status() == "Greeting saved.")

    # PIN and mode, as `voicemail pin` and `voicemail user set` would store them.
    browser.type("pin", "2468")
    browser.click("#pin-form button[type=submit]")
    browser.wait(lambda: browser.status() == "PIN changed.")
    assert verify_pin("2468", pin_hash(stack) or "")
    browser.js("document.getElementById('setting-mode').value = 'box'")
    browser.type("setting-email", "bob.work@lab.example")
    browser.click("#settings-form button[type=submit]")
    browser.wait(lambda: browser.status() == "Settings saved.")
    prefs = preferences(stack)
    assert (prefs["voicemail"], prefs["email"]) == ("box", "bob.work@lab.example")
    # A value `voicemail user set` refuses is refused here too, with the reason.
    browser.type("setting-email", "not-an-address")
    browser.click("#settings-form button[type=submit]")
    browser.wait(lambda: browser.status().startswith("Saving the settings failed"))
    assert preferences(stack)["email"] == "bob.work@lab.example"

    # Polling an unchanged list costs a 304 (the page sends the list's ETag back).
    def list_statuses() -> list[int]:
        found: list[int] = browser.js(
            "return performance.getEntriesByType('resource')"
            ".filter(r => r.name.endsWith('/messages')).map(r => r.responseStatus);"
        )
        return found

    browser.wait(lambda: 304 in list_statuses(), 15)

    # Signing out forgets the credentials: they lived in this tab's sessionStorage only.
    assert browser.js("return sessionStorage.length") == 1
    browser.click("#logout")
    browser.wait(lambda: browser.js("return !document.getElementById('login').hidden"))
    assert browser.js("return sessionStorage.length") == 0
    assert browser.js("return document.cookie") == ""

    errors = [e for e in browser.console() if e["level"] == "SEVERE" and e["source"] != "network"]
    assert errors == [], errors
    bob.hangup()
