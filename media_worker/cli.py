"""The ``voicemail`` command: one entry point for operators' tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import cast

from media_worker import __version__
from storage import cli as storage_cli

DESCRIPTION = """\
Operate the Kamailio voicemail system: inspect and manage mailboxes and prepare
message stores. Each command has its own --help."""

EPILOG = """\
environment:
  VOICEMAIL_STORAGE   default message store URL for the mailbox commands

exit status:
  0 success, 1 failure, 2 usage error, 3 backend unavailable

see also: README.md in the source tree, `voicemail COMMAND --help`"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicemail",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    storage_cli.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = cast(Callable[[argparse.Namespace], int], args.handler)
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
