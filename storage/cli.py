"""``voicemail mailbox ...`` and ``voicemail storage ...``: operator commands on a store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from storage.base import Storage
from storage.errors import BackendUnavailable, StorageError
from storage.model import Counts, MessageInfo, wav_duration
from storage.registry import open_storage

STORAGE_ENV = "VOICEMAIL_STORAGE"
CONFIG_ENV = "VOICEMAIL_CONFIG"
# The actions that change a mailbox, of which the worker must hear (lamps, webhooks).
CHANGING = frozenset({"delete", "mark-read", "mark-new", "import"})
EXIT_OK, EXIT_FAILED, EXIT_UNAVAILABLE = 0, 1, 3

STORAGE_HELP = f"""\
URL of the message store: fs:///var/spool/voicebox (SEMS-compatible spool; a bare
absolute path works too) or postgresql://user:password@host:port/database.
Default: ${STORAGE_ENV}, else the --config file's storage.url."""
CONFIG_HELP = f"""\
the worker's configuration file (default: ${CONFIG_ENV}): its storage.url, and its
data_dir, where the change is spooled for the worker to move the message-waiting lamp
and send webhooks. Without it, a change is made but the worker does not hear of it."""

MAILBOX_EPILOG = f"""\
mailbox identity:
  DOMAIN and USER are the mailbox keys the worker uses: the P-App-Param did/dom and
  uid/usr values. NAME is a message name as `list` prints it.

lamps and webhooks:
  With --config (or ${CONFIG_ENV}) naming the worker's configuration file, each change
  (delete, mark-read, mark-new, import) is written to the change spool in its data_dir;
  the worker's process 0 reads it within 0.2 s, moves the phone's message-waiting lamp
  and sends the webhooks. Without it the command says so on stderr: the lamp shows the
  change only with the mailbox's next change.

examples:
  voicemail mailbox list --storage fs:///var/spool/voicebox example.com bob
  voicemail mailbox export --storage $URL example.com bob 1700000000+alice -o msg.wav
  voicemail mailbox mark-read example.com bob 1700000000+alice     (with ${STORAGE_ENV} set)
  voicemail mailbox delete --config /etc/voicemail/voicemail.yaml example.com bob NAME
  voicemail mailbox import --sender sip:alice@example.com example.com bob hello.wav

exit status:
  0 success, 1 the mailbox or message does not exist or a value was refused,
  2 usage error, 3 the store cannot be reached or is not initialised."""


class CliError(Exception):
    """A failure to report on stderr with an exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChangeSink:
    """What a worker configuration file gives the mailbox commands: the store's URL, and
    ``forward(store)``, a context in which the store's changes reach the worker."""

    storage_url: str
    forward: Callable[[Storage], AbstractAsyncContextManager[None]]


#: Reads a configuration file; raises ValueError naming the problem.
ConfigReader = Callable[[str], ChangeSink]


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    config_reader: ConfigReader | None = None,
) -> None:
    """Register the ``mailbox`` and ``storage`` commands on the top-level parser; with
    ``config_reader``, the mailbox commands take ``--config FILE``."""
    fmt = argparse.RawDescriptionHelpFormatter
    mailbox = subparsers.add_parser(
        "mailbox",
        help="list, play, export, delete and mark messages in a mailbox",
        description="Inspect and manage the messages of one mailbox.",
        epilog=MAILBOX_EPILOG,
        formatter_class=fmt,
    )
    actions = mailbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    specs: list[tuple[str, str, bool]] = [
        ("list", "list the messages, oldest first, with new/saved counts", False),
        ("play", "play a message on this machine's sound device (sox or aplay)", True),
        ("export", "write a message's audio (WAV) to a file or stdout", True),
        ("delete", "delete a message", True),
        ("mark-read", "mark a message as read (saved), as listening to it would", True),
        ("mark-new", "mark a read message as new (unheard) again", True),
        ("import", "store a WAV file as a new message (migrations, tests)", False),
    ]
    for action, help_text, takes_name in specs:
        sub = actions.add_parser(
            action,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=MAILBOX_EPILOG,
            formatter_class=fmt,
        )
        sub.add_argument("--storage", metavar="URL", help=STORAGE_HELP)
        if config_reader is not None:
            sub.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.add_argument("domain", metavar="DOMAIN", help="mailbox domain (did or dom)")
        sub.add_argument("user", metavar="USER", help="mailbox user (uid or usr)")
        if takes_name:
            sub.add_argument("name", metavar="NAME", help="message name, as `list` shows it")
        if action == "import":
            sub.add_argument("file", metavar="FILE", help="WAV file to store")
            sub.add_argument("--sender", default="", help="who the message is from")
            sub.add_argument(
                "--received-at",
                type=int,
                metavar="UNIX_TS",
                help="when it was received (default: now)",
            )
        if action == "export":
            sub.add_argument(
                "-o",
                "--output",
                metavar="FILE",
                help="where to write (default NAME.wav; - = stdout)",
            )
        if action == "play":
            sub.add_argument(
                "--player",
                metavar="CMD",
                help="command that plays a WAV file given as its last argument "
                "(default: `play -q` from sox, else `aplay -q`)",
            )
        sub.set_defaults(handler=_run_mailbox, config_reader=config_reader)

    store_cmd = subparsers.add_parser(
        "storage",
        help="prepare a message store",
        description="Prepare a message store for use.",
        formatter_class=fmt,
        epilog="examples:\n  voicemail storage init postgresql://voicemail@db/voicemail\n"
        "  voicemail storage init fs:///var/spool/voicebox",
    )
    store_actions = store_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = store_actions.add_parser(
        "init",
        help="create the spool root, or apply the PostgreSQL schema migrations",
        description="Create the spool root (fs) or apply any schema migrations not yet applied "
        "(PostgreSQL). Safe to run again, and from several hosts at once.",
    )
    init.add_argument("url", metavar="URL", help=STORAGE_HELP)
    init.set_defaults(handler=_run_storage_init)


def _storage_url(args: argparse.Namespace, sink: ChangeSink | None = None) -> str:
    url: str | None = args.storage or os.environ.get(STORAGE_ENV)
    if not url and sink is not None:
        url = sink.storage_url
    if not url:
        raise CliError(
            f"no message store given: use --storage URL or --config FILE, or set {STORAGE_ENV}",
            2,
        )
    return url


def _change_sink(args: argparse.Namespace) -> ChangeSink | None:
    reader: ConfigReader | None = getattr(args, "config_reader", None)
    if reader is None:
        return None
    path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
    if not path:
        return None
    try:
        return reader(path)
    except ValueError as exc:
        raise CliError(str(exc), 2) from exc


def _run(coro_fn: Callable[[], Awaitable[int]]) -> int:
    try:
        return asyncio.run(_guarded(coro_fn))
    except CliError as exc:
        print(f"voicemail: {exc}", file=sys.stderr)
        return exc.status


async def _guarded(coro_fn: Callable[[], Awaitable[int]]) -> int:
    try:
        return await coro_fn()
    except BackendUnavailable as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from exc
    except (StorageError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:  # local files: import source, export target
        raise CliError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc


def _run_storage_init(args: argparse.Namespace) -> int:
    async def init() -> int:
        store = open_storage(args.url)
        await store.init()
        print(f"storage ready: {store.describe()}")
        return EXIT_OK

    return _run(init)


def _run_mailbox(args: argparse.Namespace) -> int:
    async def run() -> int:
        sink = _change_sink(args)
        async with open_storage(_storage_url(args, sink)) as store:
            if sink is not None:
                async with sink.forward(store):
                    return await _mailbox_action(store, args)
            if args.action in CHANGING:
                print(
                    f"voicemail: no --config FILE or ${CONFIG_ENV}: the worker is not told "
                    "of this change (the message-waiting lamp and webhooks won't follow)",
                    file=sys.stderr,
                )
            return await _mailbox_action(store, args)

    return _run(run)


async def _mailbox_action(store: Storage, args: argparse.Namespace) -> int:
    domain, user, out = args.domain, args.user, sys.stdout
    if args.action == "list":
        messages = await store.list_mailbox(domain, user)
        counts = await store.count(domain, user)
        if args.json:
            _print_json(out, _listing_json(domain, user, counts, messages))
        else:
            _print_listing(out, domain, user, counts, messages)
        return EXIT_OK
    if args.action == "import":
        audio = await asyncio.to_thread(Path(args.file).read_bytes)
        if wav_duration(audio) is None:
            raise CliError(f"{args.file} is not a readable WAV file")
        received_at = int(time.time()) if args.received_at is None else args.received_at
        name = await store.put_message(
            domain, user, audio, sender=args.sender, received_at=received_at
        )
        _report(out, args.json, {"imported": name}, f"stored {args.file} as {name}")
        return EXIT_OK
    name = args.name
    if args.action == "delete":
        await store.delete_message(domain, user, name)
        _report(out, args.json, {"deleted": name}, f"deleted {name}")
    elif args.action == "mark-read":
        await store.mark_read(domain, user, name)
        _report(out, args.json, {"read": name}, f"marked {name} read")
    elif args.action == "mark-new":
        await store.mark_unread(domain, user, name)
        _report(out, args.json, {"new": name}, f"marked {name} new")
    elif args.action == "export":
        message = await store.get_message(domain, user, name)
        target = args.output or f"{name}.wav"
        if target == "-":
            sys.stdout.flush()
            sys.stdout.buffer.write(message.audio)
            sys.stdout.buffer.flush()
        else:
            await asyncio.to_thread(Path(target).write_bytes, message.audio)
            _report(
                out, args.json, {"exported": name, "file": target, "bytes": len(message.audio)},
                f"wrote {len(message.audio)} bytes to {target}",
            )  # fmt: skip
    elif args.action == "play":
        message = await store.get_message(domain, user, name)
        await asyncio.to_thread(_play, message.audio, args.player)
        _report(out, args.json, {"played": name}, f"played {name}")
    return EXIT_OK


def _play(audio: bytes, player: str | None) -> None:
    if player:
        argv = shlex.split(player)
    elif shutil.which("play"):
        argv = ["play", "-q"]
    elif shutil.which("aplay"):
        argv = ["aplay", "-q"]
    else:
        raise CliError("no player found: install sox (play) or alsa-utils (aplay), or use --player")
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        tmp.write(audio)
        tmp.flush()
        result = subprocess.run([*argv, tmp.name], check=False)
    if result.returncode != 0:
        raise CliError(f"player {argv[0]!r} exited with status {result.returncode}")


def _report(out: TextIO, as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        _print_json(out, data)
    else:
        print(text, file=out)


def _print_json(out: TextIO, data: object) -> None:
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def _listing_json(
    domain: str, user: str, counts: Counts, messages: list[MessageInfo]
) -> dict[str, Any]:
    return {
        "domain": domain,
        "user": user,
        "new": counts.new,
        "saved": counts.saved,
        "messages": [
            {
                "name": m.name,
                "new": m.new,
                "received_at": m.received_at,
                "received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.received_at)),
                "sender": m.sender,
                "size": m.size,
                "duration": m.duration,
            }
            for m in messages
        ],
    }


def _print_listing(
    out: TextIO, domain: str, user: str, counts: Counts, messages: list[MessageInfo]
) -> None:
    print(f"mailbox {user}@{domain}: {counts.new} new, {counts.saved} saved", file=out)
    if not messages:
        return
    width = max(len("NAME"), *(len(m.name) for m in messages))
    print(f"{'NAME':<{width}}  STATUS  RECEIVED             LENGTH  SIZE      FROM", file=out)
    for m in messages:
        received = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.received_at))
        length = (
            "?" if m.duration is None else f"{int(m.duration) // 60}:{int(m.duration) % 60:02d}"
        )
        status = "new" if m.new else "saved"
        sender = m.sender.replace("\n", " ").replace("\r", " ")
        print(
            f"{m.name:<{width}}  {status:<6}  {received}  {length:>6}  {m.size:>8}  {sender}",
            file=out,
        )
