"""docker/: the containerised lab is the native lab's parts, started the same way."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from media_worker.lab.layout import Lab

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.yaml"


def test_compose_file_is_valid_for_docker_compose() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"smtp", "webhooks", "rtpengine", "worker1", "kamailio", "api"}


def test_every_service_runs_a_lab_part_with_the_native_start_command() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    parts = set(Lab(root=Path("/lab")).commands())
    for name, service in services.items():
        assert service["command"] == ["voicemail", "lab", "run", name]
        assert name in parts
        assert service["network_mode"] == "host"  # the lab's loopback ports, unchanged


def test_each_dockerfile_installs_the_project_and_its_daemon() -> None:
    daemons = {
        "kamailio": "kamailio-python3-modules",
        "worker": "espeak-ng",
        "rtpengine": "rtpengine-daemon",
    }
    for image, package in daemons.items():
        text = (REPO / "docker" / image / "Dockerfile").read_text()
        assert package in text
        assert "pip install" in text
        assert "/opt/kamailio-voicemail" in text
