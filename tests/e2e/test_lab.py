"""``voicemail lab``: the README's demo, on free ports in a temporary directory."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import free_port, free_udp_tcp_port, wait_until

pytestmark = pytest.mark.integration
VOICEMAIL = str(Path(sys.executable).parent / "voicemail")


def test_lab_up_twice_demo_status_and_down(tmp_path: Path) -> None:
    ports = [
        "--sip-port", str(free_udp_tcp_port()),
        "--worker-port", str(free_udp_tcp_port(count=2)),
        "--rtpengine-port", str(free_port(kind=socket.SOCK_DGRAM)),
        "--smtp-port", str(free_port()),
        "--api-port", str(free_port()),
        "--webhook-port", str(free_port()),
        "--media-base", str(random.randrange(42000, 56000, 2000)),
    ]  # fmt: skip

    def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [VOICEMAIL, "lab", *args, "--dir", str(tmp_path / "lab"), *ports],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    try:
        first = lab("up")
        assert "user bob@lab.example added" in first.stdout
        assert "kamailio: up" in first.stdout
        assert "web page: http://127.0.0.1:" in first.stdout
        assert "api: up" in first.stdout
        again = lab("up")  # harmless: everything already runs
        assert again.stdout.count("already running") == 6
        demo = lab("demo")
        assert "bob's box has a new message" in demo.stdout
        assert "To: bob@lab.example" in demo.stdout
        assert "attachment: " in demo.stdout
        assert "the same list through the HTTP API" in demo.stdout
        through_api = demo.stdout.split("the same list through the HTTP API", 1)[1]
        assert "sip:alice@lab.example" in through_api.split("\n\n", 1)[0]
        # The worker signed and delivered the new message's event to the lab's catcher.
        deliveries = tmp_path / "lab" / "webhooks"
        wait_until(lambda: any(deliveries.glob("*.json")), 15, lambda: lab("status").stdout)
        delivery = json.loads(sorted(deliveries.glob("*.json"))[0].read_text())
        assert delivery["signature_verified"] is True  # the lab's secret, on both sides
        assert (tmp_path / "lab" / "demo" / "bob-heard.wav").stat().st_size > 44
        status = lab("status")
        assert status.stdout.count("answers") == 6
    finally:
        pids = [int(p.read_text()) for p in (tmp_path / "lab" / "run").glob("*.pid")]
        lab("down", check=False)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    stopped = lab("status", check=False)
    assert stopped.returncode == 1
    assert stopped.stdout.count("not running") == 6
