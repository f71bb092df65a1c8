"""The worker's YAML configuration: the sample, defaults, and errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from media_worker.config import (
    SAMPLE,
    SAMPLE_SECRET,
    ConfigError,
    MappingRule,
    WorkerConfig,
    load_config,
    parse_config,
)


def test_the_sample_states_the_defaults_but_its_secret_and_the_recommended_attachment() -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    assert data["sip"]["secret"] == SAMPLE_SECRET
    data["sip"]["secret"] = None
    # The default keeps SEMS' WAV attachment; the sample recommends MP3.
    assert (data["email"]["attachment"], WorkerConfig().email.attachment) == ("mp3", "wav")
    data["email"]["attachment"] = "wav"
    assert parse_config(data) == WorkerConfig()


def test_the_sample_does_not_start_until_its_secret_is_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^sip\.secret: still the sample's placeholder"):
        load_config(SAMPLE)
    copy = tmp_path / "voicemail.yaml"
    copy.write_text(SAMPLE.read_text().replace(SAMPLE_SECRET, "0123456789abcdef0123"))
    assert load_config(copy).sip.secret == "0123456789abcdef0123"


def _keys(value: object, prefix: str = "") -> set[str]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = set()
        for f in dataclasses.fields(value):
            found |= {f"{prefix}{f.name}"} | _keys(getattr(value, f.name), f"{prefix}{f.name}.")
        return found
    if isinstance(value, dict):
        found = set()
        for name, inner in value.items():
            found |= {f"{prefix}{name}"} | _keys(inner, f"{prefix}{name}.")
        return found
    return set()


def test_the_sample_shows_every_setting() -> None:
    assert _keys(yaml.safe_load(SAMPLE.read_text())) == _keys(WorkerConfig())


def test_values_and_nested_sections() -> None:
    config = parse_config(
        {
            "sip": {"port": 5090, "trusted": ["10.0.0.0/8"]},
            "rtp": {"ports": [40000, 40100]},
            "apps": {"default_mode": "both", "mapping": [{"match": "1000", "app": "voicebox"}]},
            "email": {"smtp": {"host": "mail", "port": 587, "starttls": True}},
        }
    )
    assert config.sip.port == 5090
    assert config.rtp.ports == (40000, 40100)
    assert config.apps.mapping == (MappingRule("1000", "voicebox"),)
    assert config.email.smtp.starttls is True


def test_the_signing_secret_and_the_call_limit() -> None:
    assert WorkerConfig().sip.secret is None
    assert WorkerConfig().sip.signature_max_age == 30
    assert WorkerConfig().sip.max_calls == 250
    sip = parse_config(
        {"sip": {"secret": "0123456789abcdef-lab", "signature_max_age": 10, "max_calls": 2}}
    ).sip
    assert (sip.secret, sip.signature_max_age, sip.max_calls) == ("0123456789abcdef-lab", 10, 2)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"sip": {"prot": 5080}}, "sip.prot: unknown key (known: listen, port, advertised_address, trusted, ring_time, secret, signature_max_age, max_calls)"),
        ({"sip": {"port": "5080"}}, "sip.port: expected a whole number, got '5080'"),
        ({"sip": {"port": 70000}}, "sip.port: port 70000 out of range"),
        ({"sip": {"listen": "localhost"}}, "sip.listen: not an IP address: 'localhost'"),
        ({"sip": {"trusted": ["10.0.0.0/8", "kamailio"]}}, "sip.trusted[1]: not an address range: 'kamailio'"),
        ({"sip": {"secret": "short"}}, "sip.secret: a signing secret is 16 to 256 characters"),
        ({"sip": {"secret": "sixteen chars or more"}}, "sip.secret: a signing secret is 16 to 256 characters"),
        ({"sip": {"secret": 1234567890123456789}}, "sip.secret: expected text, got 1234567890123456789"),
        ({"sip": {"signature_max_age": 0}}, "sip.signature_max_age: 0 is outside 1..3600"),
        ({"sip": {"max_calls": 0}}, "sip.max_calls: must be at least 1"),
        ({"rtp": {"ports": [30000, 30001]}}, "rtp.ports: 30000-30001 leaves no room for an RTP/RTCP pair"),
        ({"rtp": {"ports": [1, 2, 3]}}, "rtp.ports: expected 2 items, got 3"),
        ({"apps": {"default_mode": "tape"}}, "apps.default_mode: expected one of voicemail, box, both, ann, got 'tape'"),
        ({"apps": {"mapping": [{"match": "(", "app": "voicebox"}]}}, "apps.mapping[0].match: bad regular expression"),
        ({"email": {"smtp": {"starttls": "yes"}}}, "email.smtp.starttls: expected true or false, got 'yes'"),
        ({"email": {"smtp": {"starttls": True, "tls": True}}}, "email.smtp: starttls and tls exclude each other"),
        ({"email": {"smtp": {"username": "vm"}}}, "email.smtp: username and password go together"),
        ({"voicemail": {"min_record_time": 5, "max_record_time": 2}}, "voicemail: min_record_time must be at least 0"),
        ({"storage": {"url": "spool"}}, "storage.url: expected fs:///path or postgresql://..., got 'spool'"),
        ({"sip": ["port"]}, "sip: expected a mapping of keys, got list"),
        (["sip"], "the configuration: expected a mapping of keys, got list"),
    ],
)  # fmt: skip
def test_errors_name_the_key(data: object, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(error)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sip: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == WorkerConfig()
    assert yaml.safe_load(SAMPLE.read_text())["storage"]["url"] == "fs:///var/spool/voicebox"
