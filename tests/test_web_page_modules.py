"""The web page's JavaScript modules in headless Chromium, without a server behind them:
the parsers of what a user types and of what the server sends (a caller's From header),
the URLs the page builds from them, the WAV the greeting recorder writes, and that
every control of the page has a name a screen reader can say. The page's files are served as `voicemail api` serves them (static
files over HTTP: ES modules do not load from file:)."""

from __future__ import annotations

import functools
import struct
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from media_worker.audio import read_wav
from tests.support.browser import Browser

pytestmark = pytest.mark.integration
STATIC = Path(__file__).resolve().parents[1] / "media_worker" / "api" / "static"


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page() -> Iterator[Browser]:
    handler = functools.partial(Quiet, directory=str(STATIC))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with Browser() as browser:
            # The page itself, signed out: with nothing in sessionStorage it asks nothing
            # of the (absent) API.
            browser.open(f"http://127.0.0.1:{server.server_address[1]}/")
            yield browser
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def call(page: Browser, module: str, body: str, *args: object) -> Any:
    """``body`` with the module's exports as ``m``; its value comes back."""
    script = (
        "const done = arguments[arguments.length - 1];"
        f"import('./{module}').then(async (m) => {{ {body} }})"
        ".then(done, (e) => done({error: String(e)}));"
    )
    return page.page.execute_async_script(script, *args)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("bob@lab.example", {"user": "bob", "domain": "lab.example"}),
        ("  sip:Bob@LAB.Example ", {"user": "Bob", "domain": "lab.example"}),
        ("sips:carol@example.com", {"user": "carol", "domain": "example.com"}),
        ("a@b@example.com", {"user": "a@b", "domain": "example.com"}),
        ("bob", None),
        ("@lab.example", None),
        ("bob@", None),
        ("..@lab.example", None),
        ("bob@..", None),
        ("", None),
    ],
)
def test_the_sign_in_address(page: Browser, typed: str, expected: object) -> None:
    assert call(page, "api.js", "return m.parseAddress(arguments[0]);", typed) == expected


@pytest.mark.parametrize(
    ("sender", "name", "uri"),
    [
        ('"Alice" <sip:alice@lab.example>', "Alice", "sip:alice@lab.example"),
        ('"Alice <script>" <sip:a@x>', "Alice <script>", "sip:a@x"),
        ('"A \\"quoted\\" name" <sip:a@x>;tag=1', 'A "quoted" name', "sip:a@x"),
        ("Bob <sip:bob@x>;tag=9", "Bob", "sip:bob@x"),
        ("<sip:carol@x>", "sip:carol@x", "sip:carol@x"),
        ('"" <sip:dave@x>', "sip:dave@x", "sip:dave@x"),
        ("sip:erin@x", "sip:erin@x", ""),
        ("", "Unknown caller", ""),
        ('"unterminated <sip:x@y>', '"unterminated', "sip:x@y"),
    ],
)
def test_the_caller_shown_for_a_from_header(
    page: Browser, sender: str, name: str, uri: str
) -> None:
    shown = call(page, "messages.js", "return m.caller(arguments[0]);", sender)
    assert shown == {"name": name, "uri": uri}


def test_mailbox_urls_are_relative_and_escape_every_part(page: Browser) -> None:
    path = call(
        page,
        "api.js",
        "const s = new m.Session('bob/x', 'lab.example', 'Basic x');"
        "return s.mailboxPath('messages', '1796192272+sip:alice@lab.example', 'audio');",
    )
    assert path == (
        "api/v1/mailboxes/lab.example/bob%2Fx/messages/1796192272%2Bsip%3Aalice%40lab.example/audio"
    )


def test_basic_credentials_are_utf8(page: Browser) -> None:
    header = call(
        page,
        "api.js",
        "return m.Session.make({user: 'bob', domain: 'lab.example'}, 'pässwörd').authorization;",
    )
    assert header == "Basic Ym9iQGxhYi5leGFtcGxlOnDDpHNzd8O2cmQ="


def test_the_recorders_wav_is_what_the_worker_plays(page: Browser) -> None:
    data = call(
        page,
        "recorder.js",
        "const samples = new Float32Array(8000);"
        "for (let i = 0; i < samples.length; i++) samples[i] = 1.5 * Math.sin(i / 10);"
        "const blob = m.encodeWav(samples, 8000);"
        "return [blob.type, Array.from(new Uint8Array(await blob.arrayBuffer()))];",
    )
    kind, raw = data
    wav = bytes(raw)
    assert kind == "audio/wav"
    assert read_wav(wav).duration == 1.0  # 8 kHz mono 16-bit PCM, or it raises
    samples = struct.unpack(f"<{8000}h", wav[44:])
    assert max(samples) == 32767  # 1.5 is clipped, not wrapped around
    assert min(samples) == -32768


def test_every_control_has_a_label_and_nothing_comes_from_elsewhere(page: Browser) -> None:
    unnamed = page.js(
        "return [...document.querySelectorAll('input, select, button, audio')]"
        ".filter(e => !e.hidden && e.type !== 'hidden')"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
        " && !e.textContent.trim())"
        ".map(e => e.id || e.outerHTML);"
    )
    assert unnamed == []
    assert page.js("return document.activeElement.id") == "login-user"
    foreign = page.js(
        "return performance.getEntriesByType('resource').map(r => r.name)"
        ".filter(u => !u.startsWith(location.origin));"
    )
    assert foreign == []


def test_the_list_shows_new_messages_first_then_the_newest_and_a_page_at_a_time(
    page: Browser,
) -> None:
    messages: list[dict[str, Any]] = [
        {"name": f"m{i}", "new": i % 3 == 0, "received_at_unix": 1_700_000_000 + i}
        for i in range(250)
    ]
    shown = call(
        page,
        "messages.js",
        "const r = m.arrange(arguments[0], 100);"
        "return {names: r.rows.map(x => x.name), fresh: r.fresh, total: r.total};",
        messages,
    )
    fresh = sorted((m for m in messages if m["new"]), key=lambda m: -m["received_at_unix"])
    saved = sorted((m for m in messages if not m["new"]), key=lambda m: -m["received_at_unix"])
    assert shown["names"] == [m["name"] for m in [*fresh, *saved][:100]]
    assert (shown["fresh"], shown["total"]) == (len(fresh), 250)
