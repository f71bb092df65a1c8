"""Where the lab's parts live and how each is configured: one description shared by
``voicemail lab``, the containerised lab and the end-to-end tests (which run the same
parts on free ports in a temporary directory)."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import media_worker
from kemi.signing import check_secret
from media_worker.config import Attachment
from media_worker.files import write_atomic
from media_worker.lab.sites import ApiSite, WebhookSite


def _on_disk(resource: Traversable) -> Path:
    """A packaged file as a path: Kamailio reads these files itself, so they must be on
    disk (an editable install or an unpacked wheel, never a zip)."""
    if not isinstance(resource, Path) or not resource.exists():
        raise FileNotFoundError(f"{resource} is not a file of the installed package")
    return resource.resolve()


# The repository's kamailio-cfg/ ships inside the package (media_worker/kamailio-cfg is a
# link to it in the source tree), and the KEMI script is the kemi package's proxy.py.
KAMAILIO_CFG_DIR = _on_disk(resources.files(media_worker) / "kamailio-cfg")
KAMAILIO_CFG = KAMAILIO_CFG_DIR / "kamailio.cfg"
LOCAL_CFG = "kamailio-local.cfg"  # the site part, which kamailio.cfg imports
KEMI_SCRIPT = _on_disk(resources.files("kemi") / "proxy.py")
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
DOMAIN = "lab.example"
# user -> (password, voicemail mode); every user's email is <user>@lab.example
USERS: dict[str, tuple[str, str]] = {
    "alice": ("alice-pw", "box"),
    "bob": ("bob-pw", "both"),
    "carol": ("carol-pw", "voicemail"),
}
DEFAULT_SWITCHES = ("WITH_AUTH", "WITH_VOICEMAIL", "WITH_RTPENGINE", "WITH_MWI", "WITH_ANTIFLOOD")
LAB_BAN_TIME = 60  # seconds: a demo or test that trips a ban recovers within a minute
SECRET_FILE = "secret"  # noqa: S105 - the name of the lab directory's secret file
WEBHOOK_SECRET_FILE = "webhook-secret"  # noqa: S105 - the catcher checks signatures with it


def lab_secret(directory: Path, name: str = SECRET_FILE) -> str:
    """A secret of a lab directory (``name``: its file): made at random on first use,
    then read back, so the proxy and the workers (or the worker and the webhook catcher)
    of every run agree. Only the owner may read it."""
    path = directory / name
    if path.exists():
        return check_secret(path.read_text().strip())
    secret = secrets.token_urlsafe(24)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    try:
        os.link(tmp, path)  # never replaces: parts started at once all read the first one
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return check_secret(path.read_text().strip())


def kamailio_local_cfg(
    *,
    host: str,
    sip_port: int,
    db_url: str,
    dispatcher_list: Path,
    run_dir: Path,
    rtpengine_ng: int | None,
    switches: Iterable[str],
    defines: Mapping[str, str] | None = None,
    header: str = "",
    secret: str | None = None,
) -> str:
    """The site part of kamailio.cfg: where it listens, its database, its workers' list,
    its control sockets in ``run_dir``, its rtpengine and which WITH_* switches are on.
    ``defines`` adds cfg defines (values as the cfg wants them, strings quoted);
    ``secret`` is VM_SECRET, shared with the workers' ``sip.secret``."""
    lines = [
        *([header] if header else []),
        f"listen=udp:{host}:{sip_port}",
        f"listen=tcp:{host}:{sip_port}",
        f'alias="{DOMAIN}"',
        f'mpath="{KAMAILIO_MODULES}"',
        f'#!define KEMI_SCRIPT "{KEMI_SCRIPT}"',
        f'#!define DBURL "{db_url}"',
        f'#!define VM_DISPATCHER_LIST "{dispatcher_list}"',
        f'#!define CTL_SOCKET "unix:{run_dir / "kamailio_ctl"}"',
        f'#!define RPC_FIFO "{run_dir / "kamailio_rpc.fifo"}"',
        *([f'#!define RTPENGINE_SOCKET "udp:{host}:{rtpengine_ng}"'] if rtpengine_ng else []),
        *(f"#!define {name}" for name in switches),
        *([f'#!define VM_SECRET "{check_secret(secret)}"'] if secret else []),
        *(f"#!define {name} {value}" for name, value in (defines or {}).items()),
    ]
    return "\n".join(lines) + "\n"


def cfg_files() -> dict[Path, Path]:
    """Every file of the shipped Kamailio cfg directory (kamailio.cfg and the native
    fragments), by its path relative to that directory; a kamailio-local.cfg an operator
    left in the source tree is the site's, not the product's."""
    return {
        path.relative_to(KAMAILIO_CFG_DIR): path
        for path in sorted(KAMAILIO_CFG_DIR.rglob("*"))
        if path.is_file() and path.relative_to(KAMAILIO_CFG_DIR) != Path(LOCAL_CFG)
    }


def install_cfg(directory: Path) -> Path:
    """Copy the shipped cfg files into ``directory`` (Kamailio reads import_file and
    include_file next to the cfg) and return the path of its kamailio.cfg."""
    for relative, path in cfg_files().items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, path.read_bytes())
    return directory / KAMAILIO_CFG.name


def dispatcher_list(host: str, ports: Iterable[int]) -> str:
    """Kamailio's dispatcher.list of a worker set (set 1) on ``host``."""
    return "".join(f"1 sip:{host}:{port};transport=udp\n" for port in ports)


def worker_yaml(
    *,
    data_dir: Path,
    host: str,
    port: int,
    rtp_ports: tuple[int, int],
    spool: Path,
    smtp_port: int,
    smtp_timeout: float = 10,
    prompts: Path | None,
    mwi_proxy: str | None,
    header: str = "",
    secret: str | None = None,
    api: ApiSite | None = None,
    webhooks: WebhookSite | None = None,
    attachment: Attachment = "mp3",
) -> str:
    """A media worker's configuration: its SIP and RTP ports, the spool, the SMTP server,
    the built prompts, with ``mwi_proxy`` where it PUBLISHes message summaries, with
    ``secret`` the proxy's VM_SECRET (``sip.secret``), and the email attachment (the lab
    sends the recommended MP3). With ``api``, the same file configures ``voicemail api``
    (it shares the worker's store and change spool); with ``webhooks``, the worker
    delivers every mailbox change there."""
    sip_secret = f", secret: '{check_secret(secret)}'" if secret else ""
    return (
        (f"{header}\n" if header else "") + f"data_dir: {data_dir}\n"
        f"sip: {{listen: {host}, port: {port}{sip_secret}}}\n"
        f"rtp: {{ports: [{rtp_ports[0]}, {rtp_ports[1]}]}}\n"
        f"storage: {{url: 'fs://{spool}'}}\n"
        f"email: {{attachment: {attachment}, "
        f"smtp: {{host: {host}, port: {smtp_port}, timeout: {smtp_timeout:g}}}}}\n"
        "apps: {default_mode: box}\n"
        + (f"prompts: {{built: {prompts}}}\n" if prompts else "")
        + (f'mwi: {{proxy: "{mwi_proxy}"}}\n' if mwi_proxy else "")
        + (api.yaml() if api else "")
        + (webhooks.yaml() if webhooks else "")
    )


def rtpengine_command(host: str, ng_port: int, media_ports: tuple[int, int]) -> list[str]:
    """rtpengine in the foreground, userspace only, on ``host``. ``--config-file=none``:
    Debian's /etc/rtpengine/rtpengine.conf would add its own fixed ports. Immediate
    endpoint learning latches onto the first packet's source and strict-source then keeps
    strangers out; the default (delayed, and heuristic too) forwards anyone's packets
    for the first 3 s."""
    low, high = media_ports
    return [
        "rtpengine", "--foreground", "--log-stderr", "--config-file=none",
        "--table=-1", f"--interface={host}", f"--listen-ng={host}:{ng_port}",
        f"--port-min={low}", f"--port-max={high}", "--delete-delay=0",
        "--endpoint-learning=immediate",
    ]  # fmt: skip


def kamailio_command(cfg: Path, run_dir: Path) -> list[str]:
    """Kamailio in the foreground, logging to stderr, its runtime files in ``run_dir``."""
    return ["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(run_dir), "-n", "2"]


def account(
    user: str, *, host: str, sip_port: int, register: bool = True, codecs: str = "PCMU,PCMA"
) -> str:
    """A baresip account line for a lab user (digest auth, outbound to Kamailio)."""
    password = USERS[user][0]
    return (
        f"<sip:{user}@{DOMAIN}>;auth_pass={password};"
        f'outbound="sip:{host}:{sip_port}";'
        f"regint={3600 if register else 0};audio_codecs={codecs}"
    )


@dataclass(frozen=True)
class Ports:
    """The lab's fixed ports (docs/operator.md, "The lab"); tests pass free ones."""

    sip: int = 5060  # Kamailio, UDP and TCP
    worker: int = 5080  # the media worker, UDP and TCP
    rtpengine_ng: int = 2223  # rtpengine's control socket
    smtp: int = 2525  # the SMTP catcher
    api: int = 8080  # `voicemail api`: the HTTP API and the web page
    webhooks: int = 8090  # the webhook catcher
    rtpengine_media: tuple[int, int] = (30000, 30999)
    worker_media: tuple[int, int] = (20000, 20999)


@dataclass(frozen=True)
class Lab:
    """One lab: a directory and its ports; everything else follows from them."""

    root: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    switches: tuple[str, ...] = DEFAULT_SWITCHES
    # Sign the proxy<->worker hop (a secret in the lab directory); None: when the worker
    # takes sip.secret.
    signing: bool = True  # a secret for the proxy<->worker hop on both sides
    # The worker part runs `voicemail worker --processes` this many, on ports.worker + i,
    # each with its slice of ports.worker_media; the dispatcher set lists them all.
    worker_processes: int = 2

    @property
    def db_url(self) -> str:
        return f"sqlite://{self.root / 'kamailio.sqlite'}"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def webhooks_dir(self) -> Path:
        return self.root / "webhooks"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def kamailio_dir(self) -> Path:
        return self.root / "kamailio"

    def worker_ports(self) -> tuple[int, ...]:
        """The dispatcher set: every process of the lab's one worker part."""
        return tuple(self.ports.worker + i for i in range(self.worker_processes))

    def worker_config(self) -> Path:
        return self.root / "worker1.yaml"

    @property
    def secret(self) -> str | None:
        return lab_secret(self.root) if self.signing else None

    # ----- generated configuration -----

    def kamailio_local_cfg(self) -> str:
        return kamailio_local_cfg(
            header="# Generated by voicemail lab: the site part of kamailio.cfg.",
            host=self.host,
            sip_port=self.ports.sip,
            db_url=self.db_url,
            dispatcher_list=self.kamailio_dir / "dispatcher.list",
            run_dir=self.run_dir,
            rtpengine_ng=self.ports.rtpengine_ng,
            switches=self.switches,
            secret=self.secret,
            defines={
                "VM_BAN_TIME": str(LAB_BAN_TIME),
                **(
                    {"MWI_SERVER_ADDRESS": f'"{self.proxy_uri(user="voicemail")}"'}
                    if self.mwi
                    else {}
                ),
            },
        )

    @property
    def mwi(self) -> bool:
        return "WITH_MWI" in self.switches

    def proxy_uri(self, user: str = "") -> str:
        return f"sip:{user + '@' if user else ''}{self.host}:{self.ports.sip}"

    def dispatcher_list(self) -> str:
        return dispatcher_list(self.host, self.worker_ports())

    @property
    def webhook_secret(self) -> str:
        return lab_secret(self.root, WEBHOOK_SECRET_FILE)

    def api(self) -> ApiSite:
        return ApiSite(host=self.host, port=self.ports.api, kamailio_db=self.db_url)

    @property
    def api_url(self) -> str:
        return self.api().url

    def webhooks(self) -> WebhookSite:
        url = f"http://{self.host}:{self.ports.webhooks}/"
        return WebhookSite(url=url, secret=self.webhook_secret)

    def worker_yaml(self) -> str:
        return worker_yaml(
            header="# Generated by voicemail lab.",
            data_dir=self.root / "worker1",
            host=self.host,
            port=self.ports.worker,
            rtp_ports=self.ports.worker_media,
            spool=self.spool,
            smtp_port=self.ports.smtp,
            prompts=self.prompts,
            mwi_proxy=self.proxy_uri() if self.mwi else None,
            secret=self.secret,
            api=self.api(),
            webhooks=self.webhooks(),
        )

    def write_configs(self, part: str | None = None) -> None:
        """Write the generated files ``part`` needs (every part's when None). The shipped
        cfg files are copied beside the generated kamailio-local.cfg."""
        for directory in (
            self.root, self.kamailio_dir, self.run_dir, self.log_dir, self.mail, self.webhooks_dir
        ):  # fmt: skip
            directory.mkdir(parents=True, exist_ok=True)
        if part in (None, "kamailio"):
            install_cfg(self.kamailio_dir)
        files: dict[str, dict[Path, str]] = {
            "kamailio": {
                self.kamailio_dir / LOCAL_CFG: self.kamailio_local_cfg(),
                self.kamailio_dir / "dispatcher.list": self.dispatcher_list(),
            }
        }
        # The API reads the worker's file (one store, one change spool in one data_dir);
        # both parts write the same bytes atomically, so either may come up first.
        files["worker1"] = files["api"] = {self.worker_config(): self.worker_yaml()}
        for name, contents in files.items():
            if part is None or part == name:
                for path, text in contents.items():
                    write_atomic(path, text.encode())

    # ----- the parts' commands (foreground; the same in containers) -----

    def commands(self) -> dict[str, list[str]]:
        """Each part's command, without the secrets a part reads from the lab directory
        as it starts (``command``): listing them creates nothing."""
        voicemail = str(Path(sys.executable).parent / "voicemail")
        commands = {
            "smtp": [
                sys.executable, "-m", "media_worker.lab.smtp",
                "--host", self.host, "--port", str(self.ports.smtp), "--dir", str(self.mail),
            ],
            "webhooks": [
                sys.executable, "-m", "media_worker.lab.webhooks",
                "--listen", self.host, "--port", str(self.ports.webhooks),
                "--dir", str(self.webhooks_dir),
            ],
            "rtpengine": rtpengine_command(
                self.host, self.ports.rtpengine_ng, self.ports.rtpengine_media
            ),
        }  # fmt: skip
        commands["worker1"] = [
            voicemail, "worker", "--config", str(self.worker_config()),
            "--processes", str(self.worker_processes),
        ]  # fmt: skip
        commands["kamailio"] = kamailio_command(self.kamailio_dir / "kamailio.cfg", self.run_dir)
        commands["api"] = [voicemail, "api", "--config", str(self.worker_config())]
        return commands

    def command(self, part: str) -> list[str]:
        """The command that starts ``part``: the catcher checks every delivery's signature
        with the secret the worker signs with."""
        command = self.commands()[part]
        return [*command, "--secret", self.webhook_secret] if part == "webhooks" else command

    def account(self, user: str, *, register: bool = True, codecs: str = "PCMU,PCMA") -> str:
        """A baresip account line for a lab user (digest auth, outbound to Kamailio)."""
        return account(
            user, host=self.host, sip_port=self.ports.sip, register=register, codecs=codecs
        )
