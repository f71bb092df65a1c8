"""The pure parts of the API: Range, Authorization, the lockout table, the api: section."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.api.auth import (
    Authenticator,
    AuthError,
    BasicCredentials,
    FailureTable,
    Operator,
    User,
    check_password,
    match_token,
    parse_authorization,
)
from media_worker.api.config import LockoutConfig, TokenConfig
from media_worker.api.ranges import ByteRange, RangeNotSatisfiable, parse_range
from media_worker.api.routes_messages import message_json
from media_worker.api.state import EncodedCache
from media_worker.config import ConfigError, parse_config
from media_worker.provisioning.provision import ha1
from storage import MessageInfo


@pytest.mark.parametrize(
    ("header", "total", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=90-200", 100, ByteRange(90, 99)),
        ("bytes=10-", 100, ByteRange(10, 99)),
        ("bytes=-10", 100, ByteRange(90, 99)),
        ("bytes=-500", 100, ByteRange(0, 99)),
        ("BYTES = 1-1", 100, ByteRange(1, 1)),  # the unit's case and spaces are tolerated
        ("bytes=5-1", 100, None),
        ("bytes=0-1,4-5", 100, None),
        ("items=0-1", 100, None),
        ("bytes=abc", 100, None),
        ("bytes=²-3", 100, None),
        ("bytes=" + "9" * 30 + "-", 100, None),
    ],
)
def test_ranges(header: str | None, total: int, expected: ByteRange | None) -> None:
    assert parse_range(header, total) == expected


@pytest.mark.parametrize(
    ("header", "total"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0)]
)
def test_unsatisfiable_ranges(header: str, total: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, total)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**6))
def test_any_range_header_gives_a_slice_inside_the_body_or_a_refusal(
    header: str, total: int
) -> None:
    try:
        wanted = parse_range(header, total)
    except RangeNotSatisfiable:
        return
    if wanted is not None:
        assert 0 <= wanted.start <= wanted.end < total
        assert wanted.content_range(total) == f"bytes {wanted.start}-{wanted.end}/{total}"


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_authorization_headers() -> None:
    assert parse_authorization(basic("bob@lab.example:pw:with:colons")) == BasicCredentials(
        "bob", "lab.example", "pw:with:colons"
    )
    assert parse_authorization(basic("a@b@lab.example:pw")) == BasicCredentials(
        "a@b", "lab.example", "pw"
    )
    assert parse_authorization("bearer  tok") == "tok"
    for bad, reason in [
        (basic("bob:pw"), "user@domain"),
        (basic("bob@lab.example:"), "user@domain"),
        (basic("@lab.example:pw"), "user@domain"),
        ("Basic ***", "base64"),
        ("Basic " + base64.b64encode(b"\xff\xfe").decode(), "base64"),
        ("Digest x", "Basic"),
        ("Bearer", "empty"),
        ("Basic " + "A" * 2000, "too long"),
    ]:
        with pytest.raises(AuthError, match=reason) as caught:
            parse_authorization(bad)
        assert caught.value.status == 401


@given(st.text(max_size=200))
def test_any_authorization_header_parses_or_is_a_401(header: str) -> None:
    try:
        parse_authorization(header)
    except AuthError as exc:
        status = exc.status
    else:
        status = 200
    assert status in (200, 401)


def test_tokens_and_passwords_are_matched_by_their_hashes() -> None:
    tokens = (
        TokenConfig("a", hashlib.sha256(b"one").hexdigest(), ("x.example",)),
        TokenConfig("b", hashlib.sha256(b"two").hexdigest(), "*"),
    )
    assert match_token("two", tokens) == tokens[1]
    assert match_token("three", tokens) is None
    assert match_token("\udcff", tokens) is None  # not encodable as UTF-8 text: no crash
    assert tokens[0].allows("x.example")
    assert not tokens[0].allows("y.example")
    assert tokens[1].allows("anything")
    creds = BasicCredentials("bob", "lab.example", "bob-pw")
    assert check_password(creds, ha1("bob", "lab.example", "bob-pw"))
    assert check_password(creds, ha1("bob", "lab.example", "bob-pw").upper())
    assert not check_password(creds, ha1("bob", "lab.example", "other"))
    assert not check_password(creds, None)
    assert not check_password(BasicCredentials("x", "y", "z"), "")


def test_the_failure_table_locks_forgets_and_stays_bounded() -> None:
    table = FailureTable(limit=3, window=10, lock_for=60, max_entries=2)
    assert not table.failed("k", 0)
    assert not table.failed("k", 1)
    assert not table.failed("k", 20)  # the first two are out of the window by now
    assert not table.failed("k", 21)
    assert table.failed("k", 22)
    assert table.retry_after("k", 30) == 52
    assert table.retry_after("k", 90) == 0
    table.failed("a", 100)
    table.failed("b", 100)
    assert len(table) == 2  # "k", the least recently failed, was forgotten
    assert table.retry_after("k", 30) == 0
    table.succeeded("a")
    assert len(table) == 1


async def test_the_authenticator_order_of_checks() -> None:
    looked_up: list[tuple[str, str]] = []

    async def lookup(user: str, domain: str) -> str | None:
        looked_up.append((user, domain))
        return ha1(user, domain, "right") if user == "bob" else None

    token = TokenConfig("ops", hashlib.sha256(b"secret-token").hexdigest(), "*")
    auth = Authenticator((token,), LockoutConfig(user_failures=2, source_failures=5), lookup)
    assert await auth.authenticate(basic("bob@d:right"), "1.1.1.1", 0) == User("bob", "d")
    assert await auth.authenticate("Bearer secret-token", "1.1.1.1", 0) == Operator(token)
    with pytest.raises(AuthError) as missing:
        await auth.authenticate(None, "1.1.1.1", 0)
    assert missing.value.status == 401
    for _ in range(2):
        with pytest.raises(AuthError):
            await auth.authenticate(basic("bob@d:wrong"), "2.2.2.2", 1)
    looked_up.clear()
    with pytest.raises(AuthError) as locked:
        await auth.authenticate(basic("bob@d:right"), "3.3.3.3", 2)
    assert (locked.value.status, locked.value.retry_after) == (429, 300)
    assert looked_up == []  # a locked user's password is not even checked
    for n in range(3):
        with pytest.raises(AuthError):
            await auth.authenticate(f"Bearer guess{n}", "2.2.2.2", 3)
    with pytest.raises(AuthError) as source_locked:
        await auth.authenticate("Bearer secret-token", "2.2.2.2", 4)
    assert source_locked.value.status == 429
    assert await auth.authenticate("Bearer secret-token", "1.1.1.1", 4) == Operator(token)


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ({}, r"^api: neither kamailio_db nor tokens"),
        ({"kamailio_db": "mysql://x/y"}, r"^api\.kamailio_db: expected sqlite"),
        ({"kamailio_db": "sqlite:///x", "listen": "localhost"}, r"^api\.listen: not an IP"),
        ({"kamailio_db": "sqlite:///x", "port": 70000}, r"^api\.port: "),
        ({"kamailio_db": "sqlite:///x", "public_url": "ftp://x"}, r"^api\.public_url: "),
        ({"kamailio_db": "sqlite:///x", "tls_certfile": "/nonexistent"}, r"^api: tls_certfile and"),
        (
            {"kamailio_db": "sqlite:///x", "tls_certfile": "/nonexistent", "tls_keyfile": "/x"},
            r"^api\.tls_certfile: no such file",
        ),
        (
            {"tokens": [{"name": "a", "sha256": "abc", "domains": "*"}]},
            r"^api\.tokens\[0\]\.sha256",
        ),
        ({"tokens": [{"name": "a", "sha256": "0" * 64}]}, r"^api\.tokens\[0\]\.domains: empty"),
        (
            {"tokens": [{"name": "a", "sha256": "0" * 64, "domains": "x"}]},
            r'^api\.tokens\[0\]\.domains: expected "\*"',
        ),
        (
            {"tokens": [{"name": "a", "sha256": "0" * 64, "domains": "*"}] * 2},
            r"^api\.tokens\[1\]\.name: 'a' is used twice",
        ),
        ({"kamailio_db": "sqlite:///x", "lockout": {"window": 0}}, r"^api\.lockout\.window"),
        (
            {"kamailio_db": "sqlite:///x", "greetings": {"types": ["a/b"]}},
            r"^api\.greetings\.types\[0\]",
        ),
        (
            {"kamailio_db": "sqlite:///x", "greetings": {"max_bytes": 5}},
            r"^api\.greetings\.max_bytes",
        ),
        (
            {"kamailio_db": "sqlite:///x", "forwarded_allow_ips": ["x"]},
            r"^api\.forwarded_allow_ips\[0\]",
        ),
        ({"kamailio_db": "sqlite:///x", "tokenz": []}, r"^api\.tokenz: unknown key"),
    ],
)
def test_the_api_section_is_checked_with_the_key_named(
    api: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"api": api})


def test_the_api_section_defaults_and_lists() -> None:
    config = parse_config(
        {"api": {"tokens": [{"name": "a", "sha256": "0" * 64, "domains": ["x.example"]}]}}
    ).api
    assert config is not None
    assert (config.listen, config.port, config.public_url, config.scheme) == (
        "127.0.0.1",
        8080,
        None,
        "http",
    )
    assert config.tokens[0].domains == ("x.example",)
    assert parse_config({}).api is None


@given(
    st.text(min_size=1, max_size=30),
    st.booleans(),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**33),
    st.text(max_size=30),
    st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_a_listed_message_is_the_json_of_its_fields(
    name: str, new: bool, size: int, received_at: int, sender: str, duration: float | None
) -> None:
    info = MessageInfo(name, new, size, received_at, sender, duration)
    parsed = json.loads(message_json(info, "/api/v1/mailboxes/d/u/messages"))
    assert parsed["name"] == name
    assert parsed["sender"] == sender
    assert (parsed["new"], parsed["size"], parsed["received_at_unix"]) == (new, size, received_at)
    expected = duration if duration is not None else max(size - 44, 0) / 16000
    assert parsed["duration_s"] == round(expected, 3)
    assert parsed["received_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(received_at))
    assert parsed["audio_url"].startswith("/api/v1/mailboxes/d/u/messages/")
    assert "/" not in parsed["audio_url"].removeprefix("/api/v1/mailboxes/d/u/messages/")[:-6]


def test_the_cache_of_encodings_is_bounded_by_count_and_bytes() -> None:
    cache = EncodedCache(max_items=2, max_bytes=10)
    cache.put(("a",), b"1234")
    cache.put(("b",), b"1234")
    assert cache.get(("a",)) == b"1234"  # now the most recent
    cache.put(("c",), b"12")
    assert (cache.get(("b",)), len(cache)) == (None, 2)
    cache.put(("d",), b"123456789")
    assert (len(cache), cache.size) == (1, 9)
    cache.put(("e",), b"x" * 11)  # larger than the whole cache: not kept
    assert (cache.get(("e",)), cache.get(("d",))) == (None, b"123456789")
    cache.put(("d",), b"12")
    assert cache.size == 2


async def test_guesses_sent_at_once_get_no_more_tries_than_one_after_another() -> None:
    release = asyncio.Event()
    asked = 0

    async def slow_lookup(user: str, domain: str) -> str | None:
        nonlocal asked
        asked += 1
        await release.wait()  # the database answers only once every guess is in
        return ha1(user, domain, "right")

    auth = Authenticator((), LockoutConfig(user_failures=3, source_failures=100), slow_lookup)
    guesses = [
        asyncio.ensure_future(auth.authenticate(basic(f"bob@d:guess{n}"), "9.9.9.9", 0))
        for n in range(20)
    ]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*guesses, return_exceptions=True)
    statuses = sorted(r.status for r in results if isinstance(r, AuthError))
    assert asked == 3  # the others were refused before the database was asked
    assert statuses == [401] * 3 + [429] * 17
    with pytest.raises(AuthError) as locked:
        await auth.authenticate(basic("bob@d:right"), "9.9.9.9", 1)
    assert locked.value.status == 429


async def test_a_pending_attempt_that_fails_to_get_an_answer_is_no_failure() -> None:
    async def broken(user: str, domain: str) -> str | None:
        raise ConnectionError("database down")

    auth = Authenticator((), LockoutConfig(user_failures=1, source_failures=1), broken)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await auth.authenticate(basic("bob@d:right"), "9.9.9.9", 0)
    assert auth.users.retry_after("bob@d", 0) == 0
    assert auth.sources.retry_after("9.9.9.9", 0) == 0


async def test_parallel_requests_with_credentials_that_passed_are_no_burst() -> None:
    async def lookup(user: str, domain: str) -> str | None:
        await asyncio.sleep(0.01)
        return ha1(user, domain, "right")

    auth = Authenticator((), LockoutConfig(user_failures=2, source_failures=2), lookup)
    assert await auth.authenticate(basic("bob@d:right"), "9.9.9.9", 0) == User("bob", "d")
    parallel = [auth.authenticate(basic("bob@d:right"), "9.9.9.9", 1) for _ in range(10)]
    assert await asyncio.gather(*parallel) == [User("bob", "d")] * 10

    # Still checked every time: once the password changes, the old one fails and counts.
    async def changed(user: str, domain: str) -> str | None:
        return ha1(user, domain, "new")

    auth.lookup = changed
    for _ in range(2):
        with pytest.raises(AuthError):
            await auth.authenticate(basic("bob@d:right"), "9.9.9.9", 2)
    with pytest.raises(AuthError) as locked:
        await auth.authenticate(basic("bob@d:new"), "9.9.9.9", 3)
    assert locked.value.status == 429
