"""The worker's YAML configuration, loaded once into frozen dataclasses.

Validation happens in one place, at start-up, and every error names the key it is about
(``rtp.ports: ...``). Unknown keys are errors too: a typo must not silently fall back to
a default. The fully commented sample is ``media_worker/etc/voicemail.yaml``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from kemi.app_param import AppName, Mode
from kemi.signing import check_secret
from media_worker.api.config import ApiConfig
from media_worker.config_errors import ConfigError as ConfigError
from media_worker.mail.outbox import SmtpSettings
from media_worker.mwi import MIN_EXPIRES
from media_worker.sip.address import Peer, SipUri
from media_worker.webhooks.events import check_filter

SAMPLE = Path(__file__).parent / "etc" / "voicemail.yaml"
# The sample's sip.secret, refused at start: a copied sample must not run with a secret
# everyone can read.
SAMPLE_SECRET = "REPLACE-WITH-VM_SECRET"  # noqa: S105
T = TypeVar("T")

DEFAULT_TRUSTED = ("127.0.0.0/8", "::1/128")
DEFAULT_MAX_CALLS = 250  # sip.max_calls: beyond, 503 and the proxy tries the next worker
DEFAULT_SIGNATURE_MAX_AGE = 30


@dataclass(frozen=True)
class SipConfig:
    """``sip:``, as the worker (media_worker/worker.py) takes it."""

    listen: str = "127.0.0.1"
    port: int = 5080  # 0: any free port
    advertised_address: str | None = None  # address in Via, Contact and SDP (default listen)
    trusted: tuple[str, ...] = DEFAULT_TRUSTED  # CIDRs allowed to send requests
    ring_time: float = 0.0  # seconds of 180 Ringing before answering (0: answer at once)
    secret: str | None = None  # must match Kamailio's VM_SECRET; None: unsigned
    signature_max_age: int = DEFAULT_SIGNATURE_MAX_AGE
    max_calls: int = DEFAULT_MAX_CALLS  # calls at once; beyond, a new INVITE gets 503

    def check(self, key: str) -> None:
        _address(self.listen, f"{key}.listen")
        _port(self.port, f"{key}.port", allow_zero=True)
        for index, cidr in enumerate(self.trusted):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(
                    f"{key}.trusted[{index}]: not an address range: {cidr!r}"
                ) from None
        if self.ring_time < 0:
            raise ConfigError(f"{key}.ring_time: must not be negative")
        if self.secret == SAMPLE_SECRET:
            raise ConfigError(
                f"{key}.secret: still the sample's placeholder: set the secret of Kamailio's "
                "VM_SECRET (e.g. from 'openssl rand -hex 32'), or null to run unsigned"
            )
        if self.secret is not None:
            try:
                check_secret(self.secret)
            except ValueError as exc:
                raise ConfigError(f"{key}.secret: {exc}") from None
        if not 1 <= self.signature_max_age <= 3600:
            raise ConfigError(
                f"{key}.signature_max_age: {self.signature_max_age} is outside 1..3600"
            )
        if self.max_calls < 1:
            raise ConfigError(f"{key}.max_calls: must be at least 1")


@dataclass(frozen=True)
class RtpConfig:
    address: str | None = None  # default: sip.listen
    ports: tuple[int, int] = (20000, 30000)

    def check(self, key: str) -> None:
        if self.address is not None:
            _address(self.address, f"{key}.address")
        low, high = self.ports
        _port(low, f"{key}.ports[0]")
        _port(high, f"{key}.ports[1]")
        if high - low < 2:
            raise ConfigError(f"{key}.ports: {low}-{high} leaves no room for an RTP/RTCP pair")


@dataclass(frozen=True)
class StorageConfig:
    url: str = "fs:///var/spool/voicebox"

    def check(self, key: str) -> None:
        if not (self.url.startswith("/") or re.match(r"[a-z][a-z0-9+.-]*://", self.url)):
            raise ConfigError(
                f"{key}.url: expected fs:///path or postgresql://..., got {self.url!r}"
            )


@dataclass(frozen=True)
class MappingRule:
    match: str  # a regular expression on the R-URI user
    app: AppName

    def check(self, key: str) -> None:
        try:
            re.compile(self.match)
        except re.error as exc:
            raise ConfigError(f"{key}.match: bad regular expression: {exc}") from None


@dataclass(frozen=True)
class AppsConfig:
    """``apps:``, as the apps (media_worker/apps/context.py ServiceSettings) take it."""

    default_mode: Mode = "voicemail"  # when P-App-Param has no mod
    simple_mode: AppName | None = None  # the app of every call without P-App-Name
    mapping: tuple[MappingRule, ...] = ()  # the first match on the R-URI user picks the app
    max_call_time: float = 1800.0  # seconds: the wall-clock limit of any call
    retry_delay: float = 5.0  # first wait before a failed delivery is tried again ...
    retry_max_delay: float = 300.0  # ... doubling up to this

    def check(self, key: str) -> None:
        if self.max_call_time <= 0:
            raise ConfigError(f"{key}.max_call_time: must be above 0")
        if self.retry_delay <= 0:
            raise ConfigError(f"{key}.retry_delay: must be above 0")
        if self.retry_max_delay < self.retry_delay:
            raise ConfigError(f"{key}.retry_max_delay: must be at least retry_delay")


# How the recording goes with its email: as it is stored (SEMS), compressed, or not at all.
Attachment = Literal["wav", "mp3", "opus", "none"]


@dataclass(frozen=True)
class EmailDomainConfig:
    """``email.domains.<domain>``: what differs for one domain's mailboxes."""

    attachment: Attachment | None = None  # None: email.attachment


@dataclass(frozen=True)
class EmailConfig:
    templates: str | None = None  # directory of *.template files; None: the shipped default
    extra_variables: tuple[str, ...] = ()
    attachment: Attachment = "wav"
    domains: dict[str, EmailDomainConfig] = field(default_factory=dict)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)  # what the outbox sends with

    def attachment_for(self, *domains: str | None) -> Attachment:
        """The attachment of the first of ``domains`` that has its own, else the default.
        Domains match whatever their case, as DNS names do."""
        by_name = {name.lower(): settings for name, settings in self.domains.items()}
        for domain in domains:
            override = by_name.get(domain.lower()) if domain else None
            if override is not None and override.attachment is not None:
                return override.attachment
        return self.attachment

    def _check_conversions(self, key: str) -> None:
        """A format this machine's libsndfile cannot write is found at start-up, not by
        a warning with every email."""
        wanted = {f"{key}.attachment": self.attachment} | {
            f"{key}.domains.{name}.attachment": settings.attachment
            for name, settings in self.domains.items()
        }
        converted = {where: fmt for where, fmt in wanted.items() if fmt in ("mp3", "opus")}
        if not converted:
            return  # numpy and libsndfile stay unloaded
        from media_worker import transcode

        missing = transcode.unwritable(sorted(set(converted.values())))
        for where, fmt in converted.items():
            if fmt in missing:
                raise ConfigError(
                    f"{where}: {fmt} cannot be written here: soundfile uses libsndfile "
                    f"{transcode.library_version()}, which lacks it (its wheels bundle "
                    "libsndfile 1.2 with MP3 and Opus; a system libsndfile needs 1.1 or "
                    "later); use wav"
                )

    def check(self, key: str) -> None:
        if "audio_url" in self.extra_variables:
            raise ConfigError(
                f"{key}.extra_variables: audio_url is the link to the message's audio, "
                "not a P-App-Param key"
            )
        seen: dict[str, str] = {}
        for domain in self.domains:
            if not domain.strip() or domain != domain.strip():
                raise ConfigError(f"{key}.domains: {domain!r} is not a domain")
            if domain.lower() in seen:
                raise ConfigError(
                    f"{key}.domains: {seen[domain.lower()]!r} and {domain!r} are the same domain"
                )
            seen[domain.lower()] = domain
        self._check_conversions(key)
        smtp, where = self.smtp, f"{key}.smtp"
        _port(smtp.port, f"{where}.port")
        if smtp.starttls and smtp.tls:
            raise ConfigError(f"{where}: starttls and tls exclude each other")
        if (smtp.username is None) != (smtp.password is None):
            raise ConfigError(f"{where}: username and password go together")


@dataclass(frozen=True)
class VoicemailConfig:
    min_record_time: float = 1.0
    max_record_time: float = 120.0

    def check(self, key: str) -> None:
        if not 0 <= self.min_record_time < self.max_record_time:
            raise ConfigError(
                f"{key}: min_record_time must be at least 0 and below max_record_time"
            )


@dataclass(frozen=True)
class PromptsConfig:
    default_language: str = "en"
    built: str | None = "/var/lib/voicemail/prompts"  # `voicemail prompts build --dir`
    overrides: str | None = None  # <dir>/<domain>/<language>/<prompt>.wav and friends


@dataclass(frozen=True)
class MwiConfig:
    """``mwi:``, as the publisher (media_worker/mwi_publisher.py) takes it."""

    proxy: str = "sip:127.0.0.1:5060"  # where PUBLISH goes (UDP, from sip.port)
    expires: int = 3600  # seconds a publication lives; refreshed before it expires

    def check(self, key: str) -> None:
        try:
            uri = SipUri.parse(self.proxy)
        except ValueError as exc:
            raise ConfigError(f"{key}.proxy: {exc}") from None
        if uri.transport != "udp":
            raise ConfigError(f"{key}.proxy: only UDP is supported, got {self.proxy!r}")
        _address(uri.host.strip("[]"), f"{key}.proxy")
        if not MIN_EXPIRES <= self.expires <= 86400:
            raise ConfigError(f"{key}.expires: {self.expires} is outside {MIN_EXPIRES}..86400")

    def destination(self) -> Peer:
        return Peer.from_uri(SipUri.parse(self.proxy))


WEBHOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_WEBHOOK_SECRET = 16
SAMPLE_WEBHOOK_SECRET = "REPLACE-WITH-A-SECRET"  # noqa: S105 - the sample's, refused


@dataclass(frozen=True)
class WebhookEndpoint:
    """One entry of ``webhooks.endpoints``."""

    name: str = ""  # names the endpoint in logs and in queued jobs: keep it when the URL moves
    url: str = ""  # http:// or https://
    secret: str = ""  # the HMAC-SHA256 key of X-Voicemail-Signature
    events: tuple[str, ...] = ("*",)  # message.created, ..., message.*, greeting.*, *

    def check(self, key: str) -> None:
        if not WEBHOOK_NAME.fullmatch(self.name):
            raise ConfigError(
                f"{key}.name: required: letters, digits, '.', '_', '-' (up to 64), "
                f"got {self.name!r}"
            )
        if not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", self.url):
            raise ConfigError(f"{key}.url: expected an http:// or https:// URL, got {self.url!r}")
        if self.secret == SAMPLE_WEBHOOK_SECRET:
            raise ConfigError(
                f"{key}.secret: still the sample's placeholder: set the secret the "
                "endpoint checks signatures with (e.g. from 'openssl rand -hex 32')"
            )
        if len(self.secret) < MIN_WEBHOOK_SECRET:
            raise ConfigError(
                f"{key}.secret: at least {MIN_WEBHOOK_SECRET} characters "
                "(e.g. from 'openssl rand -hex 32')"
            )
        if not self.events:
            raise ConfigError(f'{key}.events: empty: list the events, or ["*"] for all')
        for index, pattern in enumerate(self.events):
            try:
                check_filter(pattern)
            except ValueError as exc:
                raise ConfigError(f"{key}.events[{index}]: {exc}") from None


@dataclass(frozen=True)
class WebhooksConfig:
    """``webhooks:``, as the outbox (media_worker/webhooks/outbox.py) takes it."""

    endpoints: tuple[WebhookEndpoint, ...] = ()
    timeout: float = 10.0  # seconds one POST may take in all (connect to last byte)
    retry_delay: float = 10.0  # first wait after a failed POST ...
    retry_max_delay: float = 3600.0  # ... doubling up to this
    give_up_after: float = 259200.0  # seconds (3 days): then the job is set aside
    max_in_flight: int = 8  # POSTs at once, over all endpoints (2 at most per endpoint)
    max_backlog: int = 10000  # deliveries waiting per endpoint; beyond, set aside at once
    ca_file: str | None = None  # PEM CA certificates to trust for https; None: the system's

    def check(self, key: str) -> None:
        names = [endpoint.name for endpoint in self.endpoints]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ConfigError(f"{key}.endpoints[{index}].name: {name!r} is used twice")
        if not 0 < self.timeout <= 300:
            raise ConfigError(f"{key}.timeout: {self.timeout:g} is outside (0, 300]")
        if self.retry_delay <= 0:
            raise ConfigError(f"{key}.retry_delay: must be above 0")
        if self.retry_max_delay < self.retry_delay:
            raise ConfigError(f"{key}.retry_max_delay: must be at least retry_delay")
        if self.give_up_after < self.retry_max_delay:
            raise ConfigError(f"{key}.give_up_after: must be at least retry_max_delay")
        if not 1 <= self.max_in_flight <= 256:
            raise ConfigError(f"{key}.max_in_flight: {self.max_in_flight} is outside 1..256")
        if not 1 <= self.max_backlog <= 1_000_000:
            raise ConfigError(f"{key}.max_backlog: {self.max_backlog} is outside 1..1000000")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ConfigError(f"{key}.ca_file: no such file: {self.ca_file}")


@dataclass(frozen=True)
class WorkerConfig:
    data_dir: str = "/var/lib/voicemail"  # recording journals, the email outbox, mwi/
    sip: SipConfig = field(default_factory=SipConfig)
    rtp: RtpConfig = field(default_factory=RtpConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    apps: AppsConfig = field(default_factory=AppsConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    voicemail: VoicemailConfig = field(default_factory=VoicemailConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    mwi: MwiConfig | None = None  # None: no message-waiting indication
    api: ApiConfig | None = None  # None: `voicemail api` refuses to start
    webhooks: WebhooksConfig | None = None  # None: no webhooks

    def check(self, key: str) -> None:
        if self.apps.max_call_time <= self.voicemail.max_record_time:
            raise ConfigError(
                "apps.max_call_time: must be above voicemail.max_record_time "
                f"({self.apps.max_call_time:g} <= {self.voicemail.max_record_time:g}), "
                "or every long message is cut"
            )


def _address(value: str, key: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{key}: not an IP address: {value!r}") from None


def _port(value: int, key: str, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise ConfigError(f"{key}: port {value} out of range")


def load_config(path: Path) -> WorkerConfig:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data or {})


def parse_config(data: object) -> WorkerConfig:
    return _build(WorkerConfig, data, "")


def _build(cls: type[T], data: object, key: str) -> T:
    where = key or "the configuration"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{key}." if key else ""
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(fields)})")
    values = {
        name: _convert(hints[name], value, f"{key}.{name}" if key else name)
        for name, value in data.items()
    }
    instance = cls(**values)
    check = getattr(instance, "check", None)
    if check is not None:
        check(key or "config")
    return instance


def _convert(hint: Any, value: object, key: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        # Several alternatives (text or a list, say): the first that takes the value.
        for inner in members[:-1]:
            try:
                return _convert(inner, value, key)
            except ConfigError:
                pass
        return _convert(members[-1], value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        key_hint, value_hint = args
        return {
            _convert(key_hint, name, key): _convert(value_hint, inner, f"{key}.{name}")
            for name, inner in value.items()
        }
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _convert(a, item, f"{key}[{i}]")
            for i, (a, item) in enumerate(zip(args, value, strict=True))
        )
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover
