"""The lab's baresip phone: a port handed out free and taken before baresip binds it
does not stop the phone from starting."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from media_worker.lab.phone import RTP_PORTS
from tests.support.baresip import Baresip

pytestmark = pytest.mark.integration


def test_a_phone_whose_sip_port_was_taken_starts_on_another(caller_speech: Path) -> None:
    phone = Baresip(caller_speech)
    taken = phone.sip_port
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
            thief.bind(("127.0.0.1", taken))
            phone.start()
            assert phone.proc is not None
            assert phone.proc.poll() is None
            assert phone.sip_port != taken
            config = (phone.dir / "config").read_text()
            assert f"sip_listen 127.0.0.1:{phone.sip_port}\n" in config
            low, high = (int(p) for p in config.split("rtp_ports ", 1)[1].split()[0].split("-", 1))
            assert high - low == RTP_PORTS
            assert not any(low <= p <= high for p in (phone.sip_port, phone.cons_port))
            assert phone.cons_port != phone.sip_port
    finally:
        phone.stop()
        phone.cleanup()
