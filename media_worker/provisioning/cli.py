"""``voicemail db init`` and ``voicemail user add|set|show|del``: the Kamailio database."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import astuple
from typing import TypeVar

from kemi.app_param import MODES
from media_worker.provisioning import kamdb
from media_worker.provisioning.provision import (
    TABLES,
    DbUrl,
    Preferences,
    ProvisionError,
    Refused,
    check_password,
    check_preferences,
    parse_address,
    parse_db_url,
)

DB_ENV = "VOICEMAIL_DB"
EXIT_OK, EXIT_USAGE = 0, 2
ASK = "-"  # --password value meaning: read it from standard input or a prompt
T = TypeVar("T")

DB_HELP = f"""\
Kamailio database URL: sqlite:///ABS/PATH (the file db_sqlite opens) or
postgresql://USER:PW@HOST:PORT/DB (postgres:// as in Kamailio's db_url works too).
Default: ${DB_ENV}."""

DB_EPILOG = f"""\
Creates the Kamailio 5.6 tables the home proxy uses, with the columns of Kamailio's own
schema and the rows of table `version` that Kamailio checks at start-up:
  {", ".join(TABLES)}
(auth_db, usrloc, avpops, dispatcher, presence/MWI, pua). Tables already present are
kept; running it again changes nothing and says so. A table with another version than
Kamailio 5.6 expects is refused, before anything is changed.

examples:
  voicemail db init sqlite:///var/lib/kamailio/kamailio.sqlite
  voicemail db init postgresql://kamailio:secret@db.example.com:5432/kamailio

environment:
  {DB_ENV}   database URL when none is given

exit status:
  0 done (or nothing to do), 1 refused (a table has the wrong version), 2 usage error,
  3 the database cannot be reached"""

USER_EPILOG = f"""\
A user is a subscriber row (the digest password as ha1 = md5(user:domain:password) and
ha1b = md5(user@domain:domain:password); the plain-text column stays empty) plus one
usr_preferences row per voicemail preference, which the proxy loads as AVPs:
  --mode   -> voicemail          --email -> email     --lang -> lang
  --uid    -> uid                --did   -> did
  --greeting-type -> vm_greeting_type
Rows are string AVPs (type 0); uuid holds the uid, or is empty. For `set`, an option
given as "" removes that preference. `del` also removes the user's registrations from
table location; a running proxy keeps those in memory until they expire.

examples:
  voicemail user add bob@example.com --email bob@example.com --mode both --lang en
  echo "$PW" | voicemail user add alice@example.com --db sqlite:///var/lib/kamailio/k.sqlite
  voicemail user set bob@example.com --mode box --email ""
  voicemail user set bob@example.com --password -        (asks for the new password)
  voicemail user show bob@example.com --json
  voicemail user del bob@example.com

environment:
  {DB_ENV}   database URL when --db is not given

exit status:
  0 done, 1 refused (bad value, user exists) or no such user, 2 usage error,
  3 the database cannot be reached or is not initialised"""


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``db`` and ``user`` commands on the top-level parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    db = subparsers.add_parser(
        "db",
        help="create the Kamailio database tables",
        description="Prepare the Kamailio database of the home proxy.",
        epilog=DB_EPILOG,
        formatter_class=fmt,
    )
    db_actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = db_actions.add_parser(
        "init",
        help="create the tables and version rows (idempotent)",
        description="Create Kamailio's tables and version rows; keep what exists.",
        epilog=DB_EPILOG,
        formatter_class=fmt,
    )
    init.add_argument("url", metavar="URL", nargs="?", help=DB_HELP)
    init.set_defaults(handler=_run_init)

    user = subparsers.add_parser(
        "user",
        help="add, change, show or delete a SIP user and its voicemail preferences",
        description="Provision SIP users in the Kamailio database (subscriber and "
        "usr_preferences).",
        epilog=USER_EPILOG,
        formatter_class=fmt,
    )
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("add", "add a user (password from --password, standard input or a prompt)"),
        ("set", "change the given fields of a user"),
        ("show", "print a user and its preferences"),
        ("del", "delete a user, its preferences and its registrations"),
    ):
        sub = actions.add_parser(
            action,
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=USER_EPILOG,
            formatter_class=fmt,
        )
        sub.add_argument("address", metavar="USER@DOMAIN", help="SIP user; DOMAIN is the realm")
        sub.add_argument("--db", metavar="URL", help=DB_HELP)
        if action in ("add", "set"):
            sub.add_argument(
                "--password",
                metavar="PW",
                help='the SIP password (other local users can see it in ps); "-" reads it '
                "from standard input or asks",
            )
            sub.add_argument("--email", metavar="ADDR", help="where voicemail is emailed")
            sub.add_argument("--mode", metavar="MODE", help=f"voicemail mode: {', '.join(MODES)}")
            sub.add_argument("--lang", metavar="LANG", help="prompt language, e.g. en, de")
            sub.add_argument("--uid", metavar="UID", help="mailbox user id (default: USER)")
            sub.add_argument("--did", metavar="DID", help="mailbox domain id (default: DOMAIN)")
            sub.add_argument("--greeting-type", metavar="TYP", help="greeting played (default: vm)")
        if action == "show":
            sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.set_defaults(handler=_run_user)


def _fail(error: ProvisionError) -> int:
    print(f"voicemail: {error}", file=sys.stderr)
    return error.status


def _db_url(given: str | None) -> DbUrl | None:
    url = given or os.environ.get(DB_ENV)
    if not url:
        print(
            f"voicemail: no database given: use --db URL (db init: URL) or set {DB_ENV}",
            file=sys.stderr,
        )
        return None
    return parse_db_url(url)


def _with_db(url: DbUrl, work: Callable[[kamdb.Sql], Awaitable[T]], create: bool = False) -> T:
    async def run() -> T:
        async with kamdb.connect(url, create) as db:
            return await work(db)

    return asyncio.run(run())


def _run_init(args: argparse.Namespace) -> int:
    try:
        url = _db_url(args.url)
        if url is None:
            return EXIT_USAGE
        report = _with_db(url, kamdb.init_schema, create=True)
    except ProvisionError as exc:
        return _fail(exc)
    if not report.created:
        print(f"{url}: all {len(TABLES)} Kamailio tables already present, nothing to do")
    else:
        print(f"{url}: created {len(report.created)} tables: {', '.join(report.created)}")
        if report.present:
            print(f"already present (kept): {', '.join(report.present)}")
    return EXIT_OK


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("SIP password: ")
        if getpass.getpass("again: ") != first:
            raise Refused("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _preferences(args: argparse.Namespace) -> Preferences:
    return check_preferences(
        Preferences(
            voicemail=args.mode,
            email=args.email,
            lang=args.lang,
            uid=args.uid,
            did=args.did,
            vm_greeting_type=args.greeting_type,
        )
    )


def _run_user(args: argparse.Namespace) -> int:
    try:
        user, domain = parse_address(args.address)
        url = _db_url(args.db)
        if url is None:
            return EXIT_USAGE
        if args.action in ("add", "set"):
            prefs = _preferences(args)
            if args.action == "add" and "" in astuple(prefs):
                raise Refused('an empty value ("") only removes a preference, with `user set`')
            password: str | None = args.password
            if password == ASK or (password is None and args.action == "add"):
                password = _read_password()
            if password is not None:
                check_password(password)
            if args.action == "set" and password is None and prefs == Preferences():
                message = "nothing to change: give --password or a preference option"
                print(f"voicemail: {message}", file=sys.stderr)
                return EXIT_USAGE
        if args.action == "add":
            assert password is not None
            _with_db(url, lambda db: kamdb.add_user(db, user, domain, password, prefs))
            print(f"user {user}@{domain} added")
        elif args.action == "set":
            _with_db(url, lambda db: kamdb.set_user(db, user, domain, password, prefs))
            print(f"user {user}@{domain} changed")
        elif args.action == "show":
            record = _with_db(url, lambda db: kamdb.get_user(db, user, domain))
            _print_user(record, args.json)
        else:
            _with_db(url, lambda db: kamdb.delete_user(db, user, domain))
            print(f"user {user}@{domain} deleted")
    except ProvisionError as exc:
        return _fail(exc)
    return EXIT_OK


def _print_user(record: kamdb.UserRecord, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record.to_json(), indent=2, sort_keys=True))
        return
    print(f"user:          {record.user}@{record.domain}")
    print(f"password:      {'set (ha1, ha1b)' if record.has_password else 'not set'}")
    print(f"uuid:          {record.uuid or '-'}")
    print(f"registrations: {record.registrations}")
    print("preferences:")
    for attribute, value in sorted(record.preferences.items()):
        print(f"  {attribute:<17} {value}")
    if not record.preferences:
        print("  (none)")
