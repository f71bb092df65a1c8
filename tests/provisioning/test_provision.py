"""media_worker.provisioning.provision: schema facts (checked against Debian's Kamailio schema), input checks,
digest hashes and usr_preferences rows."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from media_worker.provisioning.provision import (
    TABLES,
    DbUrl,
    Preferences,
    Refused,
    check_domain,
    check_preferences,
    check_user,
    ha1,
    ha1b,
    load_schema,
    parse_address,
    parse_db_url,
    preference_changes,
    preference_rows,
    schema_versions,
    split_statements,
)

DEBIAN = {
    "sqlite": Path("/usr/share/kamailio/db_sqlite"),
    "postgres": Path("/usr/share/kamailio/postgres"),
}
# The Kamailio schema files that hold our tables.
DEBIAN_FILES = ("standard", "auth_db", "usrloc", "avpops", "dispatcher", "presence")
# Kamailio 5.6's versions, written out so a change shows up in review.
VERSIONS = {
    "version": 1,
    "subscriber": 7,
    "location": 9,
    "location_attrs": 1,
    "usr_preferences": 2,
    "dispatcher": 4,
    "presentity": 5,
    "active_watchers": 12,
    "watchers": 3,
    "xcap": 4,
    "pua": 7,
}

_CREATE_TABLE = re.compile(r"^CREATE TABLE (?:IF NOT EXISTS )?(\w+) \((.*?)\n\);", re.S | re.M)


def schema_columns(sql: str) -> dict[str, list[str]]:
    """``table -> column definitions`` (one stripped line each) of a schema file."""
    tables: dict[str, list[str]] = {}
    for name, body in _CREATE_TABLE.findall(sql):
        tables[name] = [line.strip().rstrip(",") for line in body.splitlines() if line.strip()]
    return tables


def _indexes(sql: str) -> set[str]:
    return {
        re.sub(r"IF NOT EXISTS ", "", line.strip())
        for line in sql.splitlines()
        if line.startswith("CREATE INDEX")
    }


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_schema_holds_our_tables_and_versions(dialect: str) -> None:
    sql = load_schema(dialect)  # type: ignore[arg-type]
    assert tuple(schema_columns(sql)) == TABLES
    assert schema_versions(sql) == VERSIONS
    assert all(stmt.startswith(("CREATE", "INSERT")) for stmt in split_statements(sql))


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_schema_matches_debian_kamailio(dialect: str) -> None:
    directory = DEBIAN[dialect]
    # make setup installs kamailio-sqlite-modules and kamailio-postgres-modules.
    assert directory.is_dir(), f"{directory} missing: install kamailio-{dialect}-modules"
    debian = "\n".join((directory / f"{name}-create.sql").read_text() for name in DEBIAN_FILES)
    ours = load_schema(dialect)  # type: ignore[arg-type]
    # Same columns with the same types, defaults and constraints, in the same order.
    assert schema_columns(ours) == schema_columns(debian)
    assert schema_versions(ours) == schema_versions(debian)
    assert _indexes(ours) == _indexes(debian)


def test_schema_statements_split_cleanly() -> None:
    statements = split_statements(load_schema("sqlite"))
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS version (")
    assert statements[1] == (
        "INSERT INTO version (table_name, table_version) values ('version','1')\n"
        "    ON CONFLICT (table_name) DO NOTHING"
    )
    assert not any("--" in stmt for stmt in statements)


def test_digest_hashes_are_rfc2617_ha1() -> None:
    assert (
        ha1("bob", "lab.example", "secret")
        == hashlib.md5(b"bob:lab.example:secret", usedforsecurity=False).hexdigest()
    )
    assert (
        ha1b("bob", "lab.example", "secret")
        == hashlib.md5(b"bob@lab.example:lab.example:secret", usedforsecurity=False).hexdigest()
    )
    # RFC 2617 section 3.5's example (realm "testrealm@host.com").
    assert (
        ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/lib/kamailio/k.sqlite", DbUrl("sqlite", "/var/lib/kamailio/k.sqlite")),
        ("postgresql://k:pw@db:5432/kam", DbUrl("postgres", "postgresql://k:pw@db:5432/kam")),
        ("postgres://k@db/kam", DbUrl("postgres", "postgresql://k@db/kam")),
    ],
)
def test_db_urls(url: str, expected: DbUrl) -> None:
    assert parse_db_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/var/lib/k.sqlite", "expected sqlite:///PATH or postgresql://..."),
        ("sqlite://relative.db", "sqlite needs an absolute file path"),
        ("mysql://k@db/kam", "scheme must be sqlite or postgresql"),
        ("postgresql://k@db", "no database name"),
    ],
)
def test_bad_db_urls(url: str, message: str) -> None:
    with pytest.raises(Refused, match=re.escape(message)):
        parse_db_url(url)


def test_url_text_hides_the_password() -> None:
    assert (
        str(parse_db_url("postgresql://k:secret@db:5432/kam")) == "postgresql://k:***@db:5432/kam"
    )
    assert str(parse_db_url("sqlite:///k.sqlite")) == "sqlite:///k.sqlite"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("bob", "bad address 'bob': expected USER@DOMAIN"),
        ("@lab.example", "bad user '': must not be empty"),
        ("bob@", "bad domain '': must not be empty"),
        ("b/b@lab.example", "bad user 'b/b': must not contain '/' or '\\'"),
        ("b\\b@lab.example", "bad user 'b\\\\b': must not contain '/' or '\\'"),
        ("b\0b@lab.example", "bad user 'b\\x00b': must not contain NUL"),
        ("b\x1bb@lab.example", "bad user 'b\\x1bb': must not contain control character '\\x1b'"),
        ("b b@lab.example", "bad user 'b b': must not contain white space"),
        ("..@lab.example", "bad user '..': must not be '.' or '..'"),
        ("bob@lab@example", "bad domain 'lab@example': not a host name or IP address"),
        ("bob@lab_example", "bad domain 'lab_example': not a host name or IP address"),
        ("bob@-lab.example", "bad domain '-lab.example': not a host name or IP address"),
        ("bob@lab..example", "bad domain 'lab..example': not a host name or IP address"),
        ("bob@[::g]", "bad domain '[::g]': not an IPv6 address"),
        ("b" * 65 + "@lab.example", "longer than 64 bytes"),
        ("bob@lab-prompts", "bad domain 'lab-prompts': must not end in '-prompts' (reserved)"),
    ],
)
def test_bad_addresses(address: str, message: str) -> None:
    with pytest.raises(Refused) as caught:
        parse_address(address)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("bob@lab.example", ("bob", "lab.example")),
        ("+4930123@voip.example.com.", ("+4930123", "voip.example.com.")),
        ("bob@192.0.2.7", ("bob", "192.0.2.7")),
        ("bob@[2001:db8::1]", ("bob", "[2001:db8::1]")),
        ("ünï@localhost", ("ünï", "localhost")),
    ],
)
def test_good_addresses(address: str, expected: tuple[str, str]) -> None:
    assert parse_address(address) == expected
    assert check_user(expected[0]) == expected[0]
    assert check_domain(expected[1]) == expected[1]


@pytest.mark.parametrize(
    ("prefs", "message"),
    [
        (
            Preferences(voicemail="mail"),
            "bad mode 'mail': must be one of voicemail, box, both, ann",
        ),
        (Preferences(email="bob"), "bad email 'bob': expected an address with '@'"),
        (Preferences(email="bob@"), "bad email 'bob@': expected an address with '@'"),
        (Preferences(email="b ob@x"), "bad email 'b ob@x': must not contain white space"),
        (Preferences(lang="english language"), "bad lang 'english language'"),
        # What the worker's P-App-Param check refuses is refused here too.
        (Preferences(lang="english"), "bad lang 'english'"),
        (Preferences(lang="en-x"), "bad lang 'en-x'"),
        (
            Preferences(did="b-prompts"),
            "bad did 'b-prompts': must not end in '-prompts' (reserved)",
        ),
        (Preferences(uid="a/b"), "bad uid 'a/b': must not contain '/' or '\\'"),
        (Preferences(did=".."), "bad did '..': must not be '.' or '..'"),
        (Preferences(vm_greeting_type=".x"), "bad greeting type '.x': must not start with '.'"),
    ],
)
def test_bad_preferences(prefs: Preferences, message: str) -> None:
    with pytest.raises(Refused) as caught:
        check_preferences(prefs)
    assert message in str(caught.value)


def test_preferences_map_to_avp_attributes() -> None:
    prefs = check_preferences(
        Preferences(
            voicemail="both",
            email="bob@lab.example",
            lang="pt_BR",
            uid="u1",
            did="d1",
            vm_greeting_type="vm",
        )
    )
    assert preference_changes(prefs) == {
        "voicemail": "both",
        "email": "bob@lab.example",
        "lang": "pt_BR",
        "uid": "u1",
        "did": "d1",
        "vm_greeting_type": "vm",
    }
    assert preference_changes(Preferences(email="")) == {"email": ""}
    assert preference_changes(Preferences()) == {}


def test_preference_rows_carry_the_uid_as_uuid_and_skip_removals() -> None:
    rows = preference_rows("bob", "lab.example", {"voicemail": "box", "uid": "u1", "email": ""})
    assert [(r.uuid, r.username, r.domain, r.attribute, r.type, r.value) for r in rows] == [
        ("u1", "bob", "lab.example", "uid", 0, "u1"),
        ("u1", "bob", "lab.example", "voicemail", 0, "box"),
    ]
    (row,) = preference_rows("bob", "lab.example", {"lang": "de"})
    assert row.uuid == ""


def test_provisioned_attributes_are_the_ones_the_proxy_reads() -> None:
    from dataclasses import fields

    from kemi.app_param import PREFERENCE_KEYS

    assert [field.name for field in fields(Preferences)] == list(PREFERENCE_KEYS)


@pytest.mark.parametrize(
    "prefs",
    [
        Preferences(email="a\"b'c@lab.example"),
        Preferences(vm_greeting_type="a\"b'"),
        Preferences(uid="u\"'1"),
        Preferences(did="d\"'.example"),
    ],
)
def test_preferences_the_proxy_cannot_quote_in_p_app_param_are_refused(
    prefs: Preferences,
) -> None:
    with pytest.raises(Refused, match="the proxy cannot send it"):
        check_preferences(prefs)
    # One quote character is fine: the proxy wraps the value in the other one.
    check_preferences(Preferences(email='a"b@lab.example', vm_greeting_type="it's"))
