"""kemi.routing: access numbers, when a failed call goes to voicemail, and the SQL
literal that keeps caller-chosen text out of the usr_preferences query."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi.routing import (
    AppCall,
    Target,
    access_target,
    app_for_access,
    app_for_voicemail,
    goes_to_voicemail,
    preferences_query,
    sql_literal,
)
from kemi.settings import Settings

SETTINGS = Settings()


@pytest.mark.parametrize(
    ("user", "target"),
    [
        ("1000", Target.VOICEBOX),
        ("1001", Target.ANNRECORDER),
        ("bob", Target.LOCATION),
        ("10000", Target.LOCATION),
        ("", Target.LOCATION),
    ],
)
def test_access_target(user: str, target: Target) -> None:
    assert access_target(user, SETTINGS) is target


def test_access_numbers_follow_the_settings() -> None:
    custom = Settings(voicebox_number="*98", annrecorder_number="*99")
    assert access_target("*98", custom) is Target.VOICEBOX
    assert access_target("*99", custom) is Target.ANNRECORDER
    assert access_target("1000", custom) is Target.LOCATION


def test_access_uses_the_callers_identity() -> None:
    assert app_for_access(Target.VOICEBOX, "alice", "lab.example") == AppCall(
        "voicebox", "alice", "lab.example"
    )
    assert app_for_access(Target.ANNRECORDER, "alice", "lab.example").app == "annrecorder"


def test_voicemail_uses_the_callees_identity() -> None:
    assert app_for_voicemail("bob", "lab.example") == AppCall("voicemail", "bob", "lab.example")


@pytest.mark.parametrize(
    ("status", "timed_out", "expected"),
    [
        (404, False, True),
        (408, False, True),
        (480, False, True),
        (486, False, True),
        (408, True, True),
        (487, True, True),  # the no-answer timer fired: whatever tm reports
        (603, False, False),
        (600, False, False),
        (487, False, False),
        (488, False, False),
        (500, False, False),
    ],
)
def test_goes_to_voicemail(status: int, timed_out: bool, expected: bool) -> None:
    assert goes_to_voicemail(status, SETTINGS, timed_out=timed_out) is expected


def test_goes_to_voicemail_follows_the_configured_statuses() -> None:
    only_busy = Settings(voicemail_statuses=(486,))
    assert goes_to_voicemail(486, only_busy, timed_out=False)
    assert not goes_to_voicemail(480, only_busy, timed_out=False)


@pytest.mark.parametrize(
    "value", ["bob", "lab.example", "+4930123", "a.b-c_d~e!f$g&h*i+j,k=l:m@n%20", "[2001:db8::1]"]
)
def test_sql_literal_quotes_safe_values(value: str) -> None:
    assert sql_literal(value) == f"'{value}'"


@pytest.mark.parametrize(
    "value",
    ["bo'b", 'bo"b', "bob\\", "bo\x00b", "bo b", "bob;", "", "x" * 129, "bö", "a\nb"],
    ids=repr,
)
def test_sql_literal_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"^refusing .* in a database lookup$"):
        sql_literal(value)


@given(st.text(max_size=140))
def test_sql_literal_never_lets_a_quote_through(value: str) -> None:
    try:
        literal = sql_literal(value)
    except ValueError:
        return
    inner = literal[1:-1]
    assert inner == value
    assert not set(inner) & set("'\"\\\x00 ;")


def test_preferences_query() -> None:
    assert preferences_query("usr_preferences", "bob", "lab.example") == (
        "SELECT attribute, value FROM usr_preferences "
        "WHERE username = 'bob' AND domain = 'lab.example'"
    )


def test_preferences_query_refuses_a_bad_domain() -> None:
    with pytest.raises(ValueError, match="refusing"):
        preferences_query("usr_preferences", "bob", "lab.example' OR '1'='1")
