"""baresip (Debian's baresip-core) as a scriptable phone for integration tests: the
product's lab phone (media_worker/lab/phone.py) as a context manager, with an async wait.

Each phone gets its own config directory, SIP port and console port. Commands go to the
``cons`` module over UDP, exactly as keys typed at its console: "/dial URI", a digit
during a call sends it as DTMF (RFC 4733), "b" hangs up. The ``sndfile`` module writes
what the phone heard and what it sent to WAV files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from media_worker.lab.phone import MODULES, Phone
from tests.support.procs import Managed

__all__ = ["MODULES", "Baresip"]


class Baresip(Phone, Managed):
    def __init__(
        self,
        source_wav: Path,
        *,
        user: str = "alice",
        codecs: str = "PCMU,PCMA",
        transport: str = "udp",
        extra_config: str = "",
        account: str | None = None,
        modules: tuple[str, ...] = MODULES,
        sample_rate: int = 8000,
        channels: int = 1,
    ) -> None:
        """``account``: a baresip account line (registration, auth, outbound proxy)
        instead of the default one, unregistered as ``user`` at 127.0.0.1 over
        ``transport`` with ``codecs``."""
        if account is None:
            params = f";transport={transport}" if transport != "udp" else ""
            account = f"<sip:{user}@127.0.0.1{params}>;regint=0;audio_codecs={codecs}"
        super().__init__(
            source_wav,
            account=account,
            modules=modules,
            sample_rate=sample_rate,
            channels=channels,
            extra_config=extra_config,
        )

    async def wait_for(self, text: str, within: float = 10) -> None:
        """wait_for_log without blocking the event loop the worker runs on."""
        await asyncio.to_thread(self.wait_for_log, text, within)
