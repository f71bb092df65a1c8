"""An SMTP server's handler for tests (aiosmtpd): the outbox tests and the stacks'."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP, Envelope, Session


class Inbox:
    """aiosmtpd handler that keeps what it accepts, or refuses as told."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.refuse: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd API
        if self.refuse:
            return self.refuse
        content = envelope.content
        assert isinstance(content, bytes)
        self.messages.append(content)
        return "250 OK"
