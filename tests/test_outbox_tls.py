"""The outbox against an SMTP server (aiosmtpd) that insists on STARTTLS and AUTH, with a
self-signed certificate made for the test by the openssl command."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from media_worker.mail.outbox import Job, Outbox, SmtpSettings
from tests.support.procs import eventually, free_port
from tests.test_outbox import message

pytestmark = pytest.mark.integration

USER, PASSWORD = "voicemail", "s3cret pässword"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1; the certificate is also the client's CA file."""
    out = tmp_path_factory.mktemp("tls")
    cert, key = out / "cert.pem", out / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class SecureInbox:
    """Accepts mail only over TLS from an authenticated client; notes how it came."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.sessions: list[tuple[bool, str | None]] = []  # (over TLS, AUTH mechanism)
        self.mechanisms: list[str] = []
        self.failed_logins = 0

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        self.mechanisms.append(mechanism)
        self.failed_logins += not ok
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends 535

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd API
        assert isinstance(envelope.content, bytes)
        self.messages.append(envelope.content)
        self.sessions.append((session.ssl is not None, self.mechanisms[-1]))
        return "250 OK"


Server = Callable[..., tuple[SecureInbox, int]]


@pytest.fixture
def secure_smtp(certificate: tuple[Path, Path]) -> Iterator[Server]:
    """``secure_smtp(exclude=[...])``: a STARTTLS+AUTH server offering LOGIN and PLAIN
    (minus ``exclude``); all are stopped afterwards."""
    started: list[Controller] = []

    def start(exclude: tuple[str, ...] = ()) -> tuple[SecureInbox, int]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        inbox, port = SecureInbox(), free_port()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=inbox.authenticate,
            auth_exclude_mechanism=list(exclude),
        )
        controller.start()
        started.append(controller)
        return inbox, port

    try:
        yield start
    finally:
        for controller in started:
            controller.stop()


@pytest.fixture
async def outboxes() -> AsyncIterator[Callable[..., Outbox]]:
    running: list[Outbox] = []

    def make(directory: Path, settings: SmtpSettings) -> Outbox:
        outbox = Outbox(directory, settings, backoff=(0.2,))
        running.append(outbox)
        return outbox

    try:
        yield make
    finally:
        for outbox in running:
            await outbox.stop()


def settings(port: int, ca_file: Path, password: str = PASSWORD) -> SmtpSettings:
    return SmtpSettings(
        port=port,
        username=USER,
        password=password,
        starttls=True,
        timeout=5,
        ca_file=str(ca_file),
    )


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
async def test_starttls_and_auth_deliver(
    tmp_path: Path,
    certificate: tuple[Path, Path],
    secure_smtp: Server,
    outboxes: Callable[..., Outbox],
    mechanism: str,
) -> None:
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    inbox, port = await asyncio.to_thread(secure_smtp, (other,))
    outbox = outboxes(tmp_path, settings(port, certificate[0]))
    await outbox.start()
    job = await outbox.submit(message(), mailbox="bob@lab.example", call_id="tls-1")
    await eventually(lambda: len(inbox.messages) == 1)
    await eventually(lambda: outbox.pending() == [])
    assert inbox.sessions == [(True, mechanism)]
    assert b"Subject: Voice message" in inbox.messages[0]
    assert not (tmp_path / "rejected" / f"{job}.eml").exists()


async def test_wrong_password_is_retried_not_lost(
    tmp_path: Path,
    certificate: tuple[Path, Path],
    secure_smtp: Server,
    outboxes: Callable[..., Outbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, port = await asyncio.to_thread(secure_smtp)
    wrong = outboxes(tmp_path, settings(port, certificate[0], password="wrong"))
    await wrong.start()
    job = await wrong.submit(message(), mailbox="bob@lab.example", call_id="tls-2")
    # Refused with 535 twice over: each time the job stays queued for another attempt.
    await eventually(lambda: inbox.failed_logins >= 2 and "not sent (attempt 2: 535" in caplog.text)
    await wrong.stop()
    assert wrong.pending() == [job]
    assert list((tmp_path / "rejected").iterdir()) == []
    record = Job.from_record((tmp_path / f"{job}.job").read_bytes())
    assert record.attempts >= 2, record
    assert record.last_error.startswith("535"), record
    assert inbox.messages == []

    # The operator corrects the password and restarts: the same job goes out.
    fixed = outboxes(tmp_path, settings(port, certificate[0]))
    await fixed.start()
    await eventually(lambda: len(inbox.messages) == 1)
    await eventually(lambda: fixed.pending() == [])
    assert inbox.sessions[-1][0] is True


async def test_untrusted_certificate_is_retried(
    tmp_path: Path,
    secure_smtp: Server,
    outboxes: Callable[..., Outbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without the CA file the self-signed certificate fails verification: no mail is
    sent in the clear, and the job waits."""
    inbox, port = await asyncio.to_thread(secure_smtp)
    outbox = outboxes(tmp_path, SmtpSettings(port=port, username=USER, password=PASSWORD,
                                             starttls=True, timeout=5))  # fmt: skip
    await outbox.start()
    job = await outbox.submit(message(), mailbox="bob@lab.example", call_id="tls-3")
    await eventually(lambda: "not sent (attempt 1" in caplog.text)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert outbox.pending() == [job]
    assert inbox.messages == []
