"""The ``voicemail`` command: one entry point for operators' tools."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from media_worker import __version__, changes_cli
from media_worker.api import cli as api_cli
from media_worker.lab import cli as lab_cli
from media_worker.provisioning import cli as provisioning_cli
from storage import cli as storage_cli

DESCRIPTION = """\
Operate the Kamailio voicemail system: inspect and manage mailboxes and prepare
message stores. Each command has its own --help."""

EPILOG = """\
commands:
  worker    run a media worker from a configuration file
  api       serve the HTTP API and the web page (visual voicemail)
  prompts   build prompts with espeak-ng, list missing ones
  pin       set, clear or unlock a mailbox's voicebox PIN
  mailbox   list, play, export, delete and mark messages in one mailbox
  storage   prepare a message store
  db        create the Kamailio database tables (subscriber, location, ...)
  user      add, change, show or delete a SIP user and its voicemail preferences
  lab       run the whole product on this machine (Kamailio, rtpengine, worker), demo

environment:
  VOICEMAIL_STORAGE   default message store URL for the mailbox and pin commands
  VOICEMAIL_CONFIG    the worker's configuration file, for the mailbox and pin
                      commands: its storage URL and the change spool in its data_dir

exit status:
  0 success, 1 failure, 2 usage error, 3 backend unavailable

see also: docs/operator.md in the source tree, `voicemail COMMAND --help`"""


WORKER_EPILOG = """\
The worker answers the calls Kamailio sends it (P-App-Name / P-App-Param) on the
configured SIP port, over UDP and TCP, and runs until SIGTERM or SIGINT, when it hangs
up its calls cleanly. Recordings a crash left behind are delivered at start-up.

With --processes N (default: one per core) it starts N worker processes and restarts
any that dies: process i listens on sip.port + i and takes the i-th of N equal slices of
rtp.ports; list every port in Kamailio's dispatcher set. Process 0 keeps its journal,
email outbox, MWI state, the change spool and the webhook outbox in data_dir; process i
its journal and email outbox in data_dir/process<i>. With --processes 1 the worker runs
in this process, without a supervisor.

Process 0 alone publishes MWI and sends webhooks. The other processes, `voicemail api`
and the `voicemail mailbox` commands (given --config) write each change they make to
the change spool, data_dir/changes/, which process 0 reads every 0.2 s.

examples:
  voicemail worker --config /etc/voicemail/voicemail.yaml
  voicemail worker --processes 1 --config voicemail.yaml   (one process, no supervisor)
  voicemail worker --check --config voicemail.yaml      (validate and exit)

exit status:
  0 stopped cleanly (or --check passed), 2 the configuration is invalid"""


def _add_worker_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="run a media worker (the application server behind Kamailio)",
        description="Run a media worker process.",
        epilog=WORKER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument(
        "--config", metavar="FILE", required=True, help="YAML configuration (see the sample)"
    )
    worker.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    worker.add_argument("--check", action="store_true", help="validate the configuration and exit")
    worker.add_argument(
        "--processes",
        metavar="N",
        type=_positive,
        help="worker processes, each on its own SIP port and RTP slice (default: one per core)",
    )
    # Set by the supervisor for each process it starts: "INDEX/COUNT".
    worker.add_argument("--process", help=argparse.SUPPRESS)
    worker.set_defaults(handler=_run_worker)


def _positive(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _run_worker(args: argparse.Namespace) -> int:
    from media_worker.config import ConfigError, load_config
    from media_worker.supervisor import default_processes, process_config

    if args.process is not None:
        index, count = (int(n) for n in args.process.split("/"))
    else:
        index, count = 0, args.processes or default_processes()
    try:
        config = load_config(Path(args.config))
        mine = [process_config(config, i, count) for i in range(count)][index]
    except ConfigError as exc:
        print(f"voicemail: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: configuration is valid")
        return 0
    if count > 1 and args.process is None:
        from media_worker.supervisor import run_supervisor

        return run_supervisor(Path(args.config), count, args.log_level)
    from media_worker.changes import spool_dir
    from media_worker.serve import run_worker

    # Every process writes its changes to process 0's spool; process 0 reads it.
    return run_worker(mine, args.log_level, index=index, spool=spool_dir(Path(config.data_dir)))


PROMPTS_EPILOG = """\
Debian's asterisk-core-sounds-en-wav gives the recorded English prompts. Languages
without a recorded set (German, SEMS' default) and the few prompts a set lacks are
spoken by espeak-ng into 8 kHz WAV files under DIR/<language>/. Operators may record
their own files instead: put them under the prompts overrides directory.

examples:
  voicemail prompts build de --dir /var/lib/voicemail/prompts
  voicemail prompts build en --dir /var/lib/voicemail/prompts
  voicemail prompts check --dir /var/lib/voicemail/prompts

exit status:
  0 done (check: nothing missing), 1 prompts missing or a tool failed"""


def _add_prompts_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prompts = subparsers.add_parser(
        "prompts",
        help="build prompts with espeak-ng, or list the missing ones",
        description="Build and check the voice prompts.",
        epilog=PROMPTS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = prompts.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser("build", help="speak a language's prompts with espeak-ng")
    build.add_argument("language", metavar="LANG", help="e.g. de, en")
    check = actions.add_parser("check", help="list prompts no file provides")
    for sub in (build, check):
        sub.add_argument(
            "--dir", default="/var/lib/voicemail/prompts", help="where built prompts live"
        )
    prompts.set_defaults(handler=_run_prompts)


def _run_prompts(args: argparse.Namespace) -> int:
    from media_worker.prompts import PromptLibrary, build_prompts

    directory = Path(args.dir)
    if args.action == "build":
        try:
            written = build_prompts(args.language, directory)
        except (ValueError, OSError, subprocess.CalledProcessError) as exc:
            print(f"voicemail: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {len(written)} prompts to {directory / args.language}")
        return 0
    missing = PromptLibrary(generated=directory).check()
    for line in missing:
        print(f"missing: {line}")
    if not missing:
        print("all prompts present")
    return 1 if missing else 0


PIN_EPILOG = """\
The PIN a caller enters at the voicebox when the proxy does not pass one in
P-App-Param. It is stored hashed (scrypt); nobody can read it back. Ten wrong entries
within an hour lock PIN entry for fifteen minutes; "unlock" ends that early.
The store is --storage URL, else $VOICEMAIL_STORAGE, else the storage.url of the
worker's configuration file (--config FILE or $VOICEMAIL_CONFIG). A PIN change moves no
lamp and sends no webhook: the worker need not hear of it.

examples:
  echo 4711 | voicemail pin set --storage fs:///var/spool/voicebox example.com bob
  voicemail pin set example.com bob          (asks, with $VOICEMAIL_STORAGE set)
  voicemail pin set --config /etc/voicemail/voicemail.yaml example.com bob
  voicemail pin unlock example.com bob
  voicemail pin clear example.com bob

exit status:
  0 done, 1 refused (a PIN is 4 to 16 digits), 3 the store cannot be reached"""


def _add_pin_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pin = subparsers.add_parser(
        "pin",
        help="set, clear or unlock a mailbox's own voicebox PIN",
        description="Manage a mailbox's voicebox PIN.",
        epilog=PIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = pin.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("set", "set the PIN (read from standard input, or asked for on a terminal)"),
        ("clear", "remove the PIN"),
        ("unlock", "forget recent wrong entries and lift a lockout"),
    ):
        sub = actions.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument(
            "--storage", metavar="URL", help="message store URL (default $VOICEMAIL_STORAGE)"
        )
        sub.add_argument(
            "--config",
            metavar="FILE",
            help="the worker's configuration file, for its storage.url (default $VOICEMAIL_CONFIG)",
        )
        sub.add_argument("domain", metavar="DOMAIN")
        sub.add_argument("user", metavar="USER")
    pin.set_defaults(handler=_run_pin)


def _run_pin(args: argparse.Namespace) -> int:
    import asyncio
    import getpass
    import os

    from media_worker.apps.pin import PinError, check_new_pin, hash_pin
    from storage import BackendUnavailable, PinRecord, StorageError, open_storage

    url = args.storage or os.environ.get("VOICEMAIL_STORAGE")
    config_path = args.config or os.environ.get("VOICEMAIL_CONFIG")
    if not url and config_path:
        from media_worker.config import ConfigError, load_config

        try:
            url = load_config(Path(config_path)).storage.url
        except ConfigError as exc:
            print(f"voicemail: configuration {config_path}: {exc}", file=sys.stderr)
            return 2
    if not url:
        print(
            "voicemail: no message store given: use --storage URL or --config FILE, "
            "or set VOICEMAIL_STORAGE",
            file=sys.stderr,
        )
        return 2
    change: Callable[[PinRecord], PinRecord]
    if args.action == "set":
        typed = getpass.getpass("new PIN: ") if sys.stdin.isatty() else sys.stdin.readline()
        try:
            stored = hash_pin(check_new_pin(typed.strip()))
        except PinError as exc:
            print(f"voicemail: {exc}", file=sys.stderr)
            return 1
        change = lambda record: PinRecord(stored)  # noqa: E731 - a fresh PIN starts clean
    elif args.action == "clear":
        change = lambda record: PinRecord()  # noqa: E731
    else:
        change = lambda record: PinRecord(record.hash)  # noqa: E731

    async def run() -> None:
        async with open_storage(url) as store:
            await store.update_pin(args.domain, args.user, change)

    try:
        asyncio.run(run())
    except BackendUnavailable as exc:
        print(f"voicemail: {exc}", file=sys.stderr)
        return 3
    except (StorageError, ValueError) as exc:
        print(f"voicemail: {exc}", file=sys.stderr)
        return 1
    print(f"PIN of {args.user}@{args.domain}: {args.action} done")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicemail",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_worker_parser(subparsers)
    api_cli.add_parser(subparsers)
    _add_prompts_parser(subparsers)
    _add_pin_parser(subparsers)
    storage_cli.add_parsers(subparsers, changes_cli.read_config)
    provisioning_cli.add_parsers(subparsers)
    lab_cli.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = cast(Callable[[argparse.Namespace], int], args.handler)
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
