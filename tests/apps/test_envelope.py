"""The envelope (key 5): the receive date and time and the caller, as prompts; and the
voicebox state machine around it."""

from __future__ import annotations

from datetime import datetime

import pytest

from media_worker.apps.envelope import (
    caller_prompts,
    envelope_prompts,
    when_prompts,
    year_prompts,
)
from media_worker.apps.events import CancelTimer, Dtmf, PlayEnvelope, StopPlayback
from media_worker.apps.voicebox import State
from media_worker.prompts import (
    PromptLibrary,
    english_ordinal,
    german_ordinal_word,
)
from tests.apps.test_voicebox_app import Driver, started

NOW = datetime(2026, 11, 27, 18, 0)  # a Friday


@pytest.mark.parametrize(
    ("received", "spoken"),
    [
        (datetime(2026, 11, 27, 15, 5), "today at number:3 oh number:5 pm"),
        (datetime(2026, 11, 27, 0, 0), "today at number:12 oclock am"),
        (datetime(2026, 11, 27, 12, 30), "today at number:12 number:30 pm"),
        (datetime(2026, 11, 26, 23, 59), "yesterday at number:11 number:59 pm"),
        (datetime(2026, 11, 23, 9, 10), "weekday_1 at number:9 number:10 am"),  # Monday
        (datetime(2026, 11, 20, 9, 10), "weekday_5 month_11 ordinal:20 at number:9 number:10 am"),
        (datetime(2026, 3, 1, 7, 0), "weekday_0 month_3 ordinal:1 at number:7 oclock am"),
        (
            datetime(2025, 12, 24, 20, 15),
            "weekday_3 month_12 ordinal:24 number:20 number:25 at number:8 number:15 pm",
        ),
        (datetime(2026, 11, 28, 8, 0), "weekday_6 month_11 ordinal:28 at number:8 oclock am"),
    ],
)
def test_english_day_and_time(received: datetime, spoken: str) -> None:
    assert " ".join(when_prompts(received, NOW, "en")) == spoken


@pytest.mark.parametrize(
    ("received", "spoken"),
    [
        (datetime(2026, 11, 27, 15, 5), "today at number:15 oclock number:5"),
        (datetime(2026, 11, 27, 0, 0), "today at number:0 oclock"),
        (datetime(2026, 11, 26, 9, 30), "yesterday at number:9 oclock number:30"),
        (datetime(2026, 11, 24, 9, 30), "weekday_2 at number:9 oclock number:30"),
        (
            datetime(2025, 12, 24, 20, 15),
            "weekday_3 ordinal:24 month_12 number:2 thousand number:25 "
            "at number:20 oclock number:15",
        ),
    ],
)
def test_german_day_and_time(received: datetime, spoken: str) -> None:
    assert " ".join(when_prompts(received, NOW, "de")) == spoken


@pytest.mark.parametrize(
    ("year", "german", "spoken"),
    [
        (2026, False, "number:20 number:26"),
        (2005, False, "number:2 thousand number:5"),
        (2000, False, "number:2 thousand"),
        (1999, False, "number:19 number:99"),
        (1905, False, "number:19 oh number:5"),
        (1900, False, "number:19 hundred"),
        (2026, True, "number:2 thousand number:26"),
        (1990, True, "number:19 hundred number:90"),
    ],
)
def test_years(year: int, german: bool, spoken: str) -> None:
    assert " ".join(year_prompts(year, german)) == spoken


@pytest.mark.parametrize(
    ("sender", "spoken"),
    [
        ("sip:4930@lab.example", ("number:4", "number:9", "number:3", "number:0")),
        ('"Bob" <sip:+49301@lab.example>', ("number:4", "number:9", "number:3", "number:0", "number:1")),
        ("<sip:0301;user=phone@lab.example>", ("number:0", "number:3", "number:0", "number:1")),
        ('"Alice" <sip:alice@lab.example>', ("unknown_caller",)),
        ("", ("unknown_caller",)),
        ("sip:" + "1" * 16 + "@x", ("unknown_caller",)),  # longer than E.164
        ("sip:٤٩@x", ("unknown_caller",)),  # digits, but not ones we can say
    ],
)  # fmt: skip
def test_caller(sender: str, spoken: tuple[str, ...]) -> None:
    assert caller_prompts(sender) == spoken


def test_whole_envelope() -> None:
    assert envelope_prompts(datetime(2026, 11, 27, 15, 5), NOW, "sip:42@x", "en") == (
        "received", "today", "at", "number:3", "oh", "number:5", "pm",
        "from", "number:4", "number:2",
    )  # fmt: skip


def test_ordinals() -> None:
    assert english_ordinal(1) == ("digits/h-1",)
    assert english_ordinal(20) == ("digits/h-20",)
    assert english_ordinal(21) == ("digits/20", "digits/h-1")
    assert english_ordinal(30) == ("digits/h-30",)
    assert english_ordinal(31) == ("digits/30", "digits/h-1")
    with pytest.raises(ValueError, match="cannot say the ordinal 32: 1-31 only"):
        english_ordinal(32)
    words = {n: german_ordinal_word(n) for n in (1, 2, 3, 7, 8, 12, 17, 20, 21, 30, 31)}
    assert words == {
        1: "ersten", 2: "zweiten", 3: "dritten", 7: "siebten", 8: "achten",
        12: "zwölften", 17: "siebzehnten", 20: "zwanzigsten", 21: "einundzwanzigsten",
        30: "dreißigsten", 31: "einunddreißigsten",
    }  # fmt: skip


def test_every_english_envelope_prompt_has_audio() -> None:
    library = PromptLibrary()
    received = [datetime(2025, day % 12 + 1, day, day % 24, day * 2 % 60) for day in range(1, 32)]
    names = {name for r in received for name in envelope_prompts(r, NOW, "sip:0123@x", "en")}
    names |= {name for r in received for name in envelope_prompts(r, NOW, "sip:bob@x", "en")}
    assert {"ordinal:31", "month_12", "weekday_0", "unknown_caller", "oh"} <= names
    for name in sorted(names):
        assert library.get(name, "en"), name


def state(d: Driver) -> State:
    return d.box.state  # read afresh each time: the events move it on


def test_envelope_key_while_a_message_plays() -> None:
    d = started()
    d.finish_playback()  # summary
    d.finish_playback()  # "first message": 400+d plays
    actions = d.send(Dtmf("5"))
    assert actions[:2] == [CancelTimer("wait"), StopPlayback()]
    assert isinstance(actions[2], PlayEnvelope)
    assert actions[2].name == "400+d"
    assert state(d) is State.ENVELOPE
    d.send(Dtmf("6"))  # a key during the envelope acts at once: the next message
    assert state(d) is State.INTRO
    d.finish_playback()  # "next message": 200+b plays
    d.send(Dtmf("5"))
    d.finish_playback()  # the envelope ends: back to the menu
    assert state(d) is State.MENU
    assert d.played()[-3:] == ["<200+b>", "[envelope 200+b]", "message_menu"]
