"""The command, the OpenAPI description, the offline docs page, the web page's mount,
security headers and HTTPS."""

from __future__ import annotations

import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from media_worker.cli import main
from tests.api.conftest import DOMAIN, Api, as_bob
from tests.support.api import VOICEMAIL, ApiServer, token_hash

pytestmark = pytest.mark.integration

ISSUE_PATHS = {
    ("get", "/api/v1/mailboxes/{domain}/{user}"),
    ("get", "/api/v1/mailboxes/{domain}/{user}/messages"),
    ("get", "/api/v1/mailboxes/{domain}/{user}/messages/{name}/audio"),
    ("patch", "/api/v1/mailboxes/{domain}/{user}/messages/{name}"),
    ("delete", "/api/v1/mailboxes/{domain}/{user}/messages/{name}"),
    ("get", "/api/v1/mailboxes/{domain}/{user}/greetings/{type}"),
    ("put", "/api/v1/mailboxes/{domain}/{user}/greetings/{type}"),
    ("delete", "/api/v1/mailboxes/{domain}/{user}/greetings/{type}"),
    ("put", "/api/v1/mailboxes/{domain}/{user}/pin"),
    ("delete", "/api/v1/mailboxes/{domain}/{user}/pin"),
    ("patch", "/api/v1/mailboxes/{domain}/{user}/settings"),
}


def test_the_description_lists_every_resource_and_the_docs_work_offline(fs_api: Api) -> None:
    with httpx.Client(base_url=fs_api.server.base_url) as client:
        spec = client.get("/api/v1/openapi.json").json()
        found = {(method, path) for path, item in spec["paths"].items() for method in item}
        assert found == ISSUE_PATHS
        schemes = spec["components"]["securitySchemes"]
        assert {(s["type"], s["scheme"]) for s in schemes.values()} == {
            ("http", "basic"),
            ("http", "bearer"),
        }
        page = client.get("/api/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        # Everything the page loads is ours: no scheme-qualified URL in it or its files.
        for ref in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert ref.startswith("/"), ref
            assert client.get(ref).status_code == 200, ref
        script = client.get("/api/docs/docs.js").text
        assert "http://" not in script
        assert "https://" not in script
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_the_web_page_is_served_at_the_root(fs_api: Api) -> None:
    with httpx.Client(base_url=fs_api.server.base_url) as client:
        root = client.get("/")
        assert root.status_code == 200
        assert root.headers["content-type"].startswith("text/html")
        assert root.headers["x-content-type-options"] == "nosniff"
        assert client.get("/no-such-file.js").status_code == 404
        assert client.get("/api/v1/nothing").status_code == 404
        reply = client.get(f"/api/v1/mailboxes/{DOMAIN}/bob", auth=as_bob())
        assert "server" not in reply.headers


def test_the_command_checks_its_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "voicemail.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path)}))
    assert main(["api", "--config", str(config), "--check"]) == 2
    assert "has no api: section" in capsys.readouterr().err
    config.write_text(yaml.safe_dump({"api": {"kamailio_db": "sqlite://relative"}}))
    assert main(["api", "--config", str(config), "--check"]) == 2
    assert "api.kamailio_db: bad database URL" in capsys.readouterr().err
    token = {"name": "ops", "sha256": token_hash("x"), "domains": "*"}
    config.write_text(yaml.safe_dump({"api": {"tokens": [token]}}))
    assert main(["api", "--config", str(config), "--check"]) == 0
    assert "configuration is valid" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["api", "--help"])
    text = capsys.readouterr().out
    for words in ("--config FILE", "exit status:", "examples:", "bearer token", "data_dir/changes"):
        assert words in text, words
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "  api " in capsys.readouterr().out


def test_a_port_in_use_is_a_clear_failure(tmp_path: Path, fs_api: Api) -> None:
    config = tmp_path / "voicemail.yaml"
    token = {"name": "ops", "sha256": token_hash("x"), "domains": "*"}
    port = fs_api.server.port  # the module's server holds it
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path),
                "storage": {"url": f"fs://{tmp_path}/s"},
                "api": {"port": port, "tokens": [token]},
            }
        )
    )
    result = subprocess.run(
        [VOICEMAIL, "api", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr + result.stdout


def test_https_when_certificate_and_key_are_configured(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    token = {"name": "ops", "sha256": token_hash("tls-token"), "domains": "*"}
    settings = {"tokens": [token], "tls_certfile": str(cert), "tls_keyfile": str(key)}
    server = ApiServer(tmp_path, f"fs://{tmp_path / 'spool'}", settings)
    server.base_url = server.base_url.replace("http://", "https://")
    trust = ssl.create_default_context(cafile=str(cert))
    server.verify = trust
    with server:
        reply = httpx.get(
            f"{server.base_url}/api/v1/mailboxes/{DOMAIN}/bob",
            headers={"Authorization": "Bearer tls-token"},
            verify=trust,
        )
        assert reply.status_code == 200
        assert reply.headers["strict-transport-security"] == "max-age=31536000"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{server.port}/api/v1/openapi.json", timeout=5)


def test_request_bodies_are_bounded_before_anyone_is_asked(fs_api: Api) -> None:
    url = f"{fs_api.url}/mailboxes/{DOMAIN}/bob/messages/x"
    with httpx.Client() as client:
        # Anonymous, with a declared length or streamed in chunks: refused unread.
        big = client.patch(url, content=b"{" + b" " * 70_000 + b"}")
        assert big.status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(100):
                yield b" " * 1000

        streamed = client.patch(url, content=chunks())
        assert streamed.status_code == 413
        # A small body goes on to the authentication as usual.
        assert client.patch(url, json={"new": False}).status_code == 401
        greeting = f"{fs_api.url}/mailboxes/{DOMAIN}/bob/greetings/vm"
        assert client.put(greeting, content=b"\0" * 200_001, auth=as_bob()).status_code == 413
