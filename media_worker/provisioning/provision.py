"""Provisioning of the Kamailio database (the SerWeb role), without I/O.

The schema text, the database URL, the checks on user input, the digest hashes and the
``usr_preferences`` rows live here; ``kamdb`` runs them against a database and ``cli`` is
the ``voicemail db|user`` command. User input is checked as the worker and the store
would check it, with their own rules.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Literal
from urllib.parse import unquote, urlsplit

from kemi.app_param import MODES, PREFERENCE_KEYS, ParamError, quote_value
from media_worker.apps.params import LANGUAGE_TAG
from storage.errors import BadIdentity
from storage.identity import PROMPTS_SUFFIX, check_greeting_type, check_identity

Dialect = Literal["sqlite", "postgres"]

# The tables `voicemail db init` creates, in the order of the schema files.
TABLES = (
    "version",
    "subscriber",
    "location",
    "location_attrs",
    "usr_preferences",
    "dispatcher",
    "presentity",
    "active_watchers",
    "watchers",
    "xcap",
    "pua",
)
# avpops' usr_preferences.type: 0 is a string-named AVP holding a string value.
AVP_TYPE_STRING = 0
# Column widths of Kamailio's schema; PostgreSQL would refuse longer values, SQLite would
# store them and Kamailio would then truncate them.
MAX_USERNAME = 64
MAX_DOMAIN = 64
MAX_PREF_VALUE = 128
MAX_UUID = 64

_WHITESPACE = re.compile(r"\s")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_VERSION_ROW = re.compile(
    r"INSERT INTO version \(table_name, table_version\) values \('(\w+)','(\d+)'\)"
)


class ProvisionError(Exception):
    """Base of the errors `voicemail db|user` reports; ``status`` is the exit status."""

    status = 1


class Refused(ProvisionError, ValueError):
    """A value or request the database must not receive (bad input, user exists)."""


class UserNotFound(ProvisionError, LookupError):
    """No subscriber row for the user."""

    def __init__(self, user: str, domain: str) -> None:
        super().__init__(f"no user {user}@{domain}")


class DatabaseUnavailable(ProvisionError, ConnectionError):
    """The database cannot be reached, or does not hold Kamailio's tables."""

    status = 3


# ----- schema -----


def load_schema(dialect: Dialect) -> str:
    """The DDL shipped in ``schema/<dialect>.sql`` beside this module."""
    return resources.files(__package__).joinpath("schema", f"{dialect}.sql").read_text("utf-8")


def split_statements(sql: str) -> list[str]:
    """The statements of a schema file (no ``;`` occurs inside our DDL's literals)."""
    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    return [stmt.strip() for stmt in without_comments.split(";") if stmt.strip()]


def schema_versions(sql: str) -> dict[str, int]:
    """``table -> version`` from the ``INSERT INTO version`` rows of a schema file."""
    return {table: int(number) for table, number in _VERSION_ROW.findall(sql)}


# ----- database URL -----


@dataclass(frozen=True)
class DbUrl:
    """Where the Kamailio tables live: an SQLite file or a PostgreSQL DSN."""

    dialect: Dialect
    target: str  # SQLite: absolute file path; PostgreSQL: a DSN asyncpg accepts

    def __str__(self) -> str:
        """The URL without its password, for messages."""
        if self.dialect == "sqlite":
            return f"sqlite://{self.target}"
        parts = urlsplit(self.target)
        if parts.password is None:
            return self.target
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()


def parse_db_url(url: str) -> DbUrl:
    """``sqlite:///abs/path`` or ``postgresql://user:pw@host:port/db`` (also Kamailio's
    ``postgres://``); raise Refused for anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise Refused(f"bad database URL {url!r}: expected sqlite:///PATH or postgresql://...")
    scheme = scheme.lower()
    if scheme == "sqlite":
        path = unquote(rest)
        if not path.startswith("/") or path.rstrip("/") == "":
            raise Refused(f"bad database URL {url!r}: sqlite needs an absolute file path")
        return DbUrl("sqlite", path)
    if scheme in ("postgresql", "postgres"):
        if not urlsplit(url).path.strip("/"):
            raise Refused(f"bad database URL {url!r}: no database name")
        return DbUrl("postgres", "postgresql://" + rest)
    raise Refused(f"bad database URL {url!r}: scheme must be sqlite or postgresql")


# ----- user input -----


def check_key(kind: str, value: str, limit: int) -> str:
    """An identity value (user, uid, did, email): what the store accepts as an opaque key,
    without white space and within its column's width."""
    try:
        check_identity(kind, value)
    except BadIdentity as exc:
        raise Refused(str(exc)) from None
    if _WHITESPACE.search(value):
        raise Refused(f"bad {kind} {value!r}: must not contain white space")
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise Refused(f"bad {kind} {value!r}: longer than {limit} bytes")
    return value


def check_user(user: str) -> str:
    check_key("user", user, MAX_USERNAME)
    if "@" in user:
        raise Refused(f"bad user {user!r}: must not contain '@'")
    return user


def check_domain(domain: str) -> str:
    """A host name, an IPv4 address or a bracketed IPv6 address."""
    check_key("domain", domain, MAX_DOMAIN)
    if domain.endswith(PROMPTS_SUFFIX):
        raise Refused(f"bad domain {domain!r}: must not end in {PROMPTS_SUFFIX!r} (reserved)")
    if domain.startswith("[") and domain.endswith("]"):
        try:
            ipaddress.IPv6Address(domain[1:-1])
        except ValueError:
            raise Refused(f"bad domain {domain!r}: not an IPv6 address") from None
        return domain
    labels = domain.removesuffix(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise Refused(f"bad domain {domain!r}: not a host name or IP address")
    return domain


def parse_address(address: str) -> tuple[str, str]:
    """``USER@DOMAIN`` -> (user, domain), both checked."""
    user, sep, domain = address.partition("@")
    if not sep:
        raise Refused(f"bad address {address!r}: expected USER@DOMAIN")
    return check_user(user), check_domain(domain)


def ha1(user: str, domain: str, password: str) -> str:
    """Digest HA1 as auth_db reads it from ``subscriber.ha1`` (realm = domain)."""
    return _md5(f"{user}:{domain}:{password}")


def ha1b(user: str, domain: str, password: str) -> str:
    """HA1 for clients that send ``user@domain`` as the digest username (``ha1b``)."""
    return _md5(f"{user}@{domain}:{domain}:{password}")


def _md5(text: str) -> str:
    # RFC 2617 digest is MD5 by definition; this is not a password-storage choice.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def check_password(password: str) -> str:
    if not password:
        raise Refused("bad password: must not be empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise Refused("bad password: must not contain control characters")
    return password


# ----- preferences -----


@dataclass(frozen=True)
class Preferences:
    """A user's voicemail preferences, each field named after its usr_preferences
    attribute (the AVP the proxy loads: kemi.app_param.PREFERENCE_KEYS); None: not given
    (left alone by ``set``), "": remove the preference."""

    voicemail: str | None = None  # the mode
    email: str | None = None
    lang: str | None = None
    uid: str | None = None
    did: str | None = None
    vm_greeting_type: str | None = None


def check_preferences(prefs: Preferences) -> Preferences:
    """Raise Refused for a value the worker would refuse; "" (removal) always passes."""
    if prefs.voicemail and prefs.voicemail not in MODES:
        raise Refused(f"bad mode {prefs.voicemail!r}: must be one of {', '.join(MODES)}")
    if prefs.email:
        check_key("email", prefs.email, MAX_PREF_VALUE)
        local, _, host = prefs.email.rpartition("@")
        if not local or not host:
            raise Refused(f"bad email {prefs.email!r}: expected an address with '@'")
    if prefs.lang and not LANGUAGE_TAG.fullmatch(prefs.lang):
        raise Refused(f"bad lang {prefs.lang!r}: expected a language tag such as en or pt_BR")
    if prefs.uid:
        check_key("uid", prefs.uid, MAX_UUID)
    if prefs.did:
        check_key("did", prefs.did, MAX_PREF_VALUE)
        if prefs.did.endswith(PROMPTS_SUFFIX):  # the did is the mailbox's domain
            raise Refused(f"bad did {prefs.did!r}: must not end in {PROMPTS_SUFFIX!r} (reserved)")
    if prefs.vm_greeting_type:
        check_key("greeting type", prefs.vm_greeting_type, MAX_PREF_VALUE)
        try:
            check_greeting_type(prefs.vm_greeting_type)
        except BadIdentity as exc:
            raise Refused(str(exc)) from None
    # The proxy sends each value in P-App-Param: one it cannot quote there would make
    # every call to the mailbox fail ("500 Voicemail profile unusable").
    for attribute, value in preference_changes(prefs).items():
        try:
            quote_value(PREFERENCE_KEYS[attribute], value)
        except ParamError as exc:
            raise Refused(f"bad {attribute} {value!r}: the proxy cannot send it ({exc})") from None
    return prefs


def preference_changes(prefs: Preferences) -> dict[str, str]:
    """``attribute -> value`` for each preference given ("" means remove the attribute)."""
    return {attribute: value for attribute, value in asdict(prefs).items() if value is not None}


@dataclass(frozen=True)
class PreferenceRow:
    """One ``usr_preferences`` row (avpops layout)."""

    uuid: str
    username: str
    domain: str
    attribute: str
    value: str
    type: int = AVP_TYPE_STRING


def preference_rows(user: str, domain: str, preferences: Mapping[str, str]) -> list[PreferenceRow]:
    """The rows for a user's full preference set; ``uuid`` is the uid (NOT NULL, '' when
    none) so that ``avp_db_load("$uid"...)`` style lookups find them too."""
    uuid = preferences.get("uid", "")
    return [
        PreferenceRow(uuid, user, domain, attribute, value)
        for attribute, value in sorted(preferences.items())
        if value
    ]
