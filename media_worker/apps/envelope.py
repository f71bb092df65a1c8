"""What the envelope key says about a message: when it came and who left it.

Pure: the receive time and "now" come in as local wall-clock datetimes; the answer is a
row of logical prompts (``number:N``, ``ordinal:N``, ``weekday_0`` for Sunday, ...).
English follows Asterisk's voicemail envelope ("received yesterday at 3 oh 5 p-m from
4 9 3 0"); German says the day and the 24-hour time ("Empfangen gestern um 15 Uhr 5 von
4 9 3 0").
"""

from __future__ import annotations

from datetime import datetime

MAX_CALLER_DIGITS = 15  # E.164; anything longer is not a number worth reading out


def when_prompts(received: datetime, now: datetime, language: str) -> tuple[str, ...]:
    """The day (today, yesterday, a weekday within the week, else the date), then the time."""
    days_ago = (now.date() - received.date()).days
    weekday = f"weekday_{received.isoweekday() % 7}"
    german = language == "de"
    day: tuple[str, ...]
    if days_ago == 0:
        day = ("today",)
    elif days_ago == 1:
        day = ("yesterday",)
    elif 1 < days_ago < 7:
        day = (weekday,)
    else:  # older, or a clock that has gone back: the full date
        ordinal, month = f"ordinal:{received.day}", f"month_{received.month}"
        day = (weekday, ordinal, month) if german else (weekday, month, ordinal)
        if received.year != now.year:
            day += year_prompts(received.year, german)
    hour, minute = received.hour, received.minute
    if german:  # "um 15 Uhr 5"
        time = ("at", f"number:{hour}", "oclock") + ((f"number:{minute}",) if minute else ())
    else:  # "at 3 oh 5 p-m", "at 12 o'clock a-m"
        spoken_minute: tuple[str, ...]
        if minute == 0:
            spoken_minute = ("oclock",)
        elif minute < 10:
            spoken_minute = ("oh", f"number:{minute}")
        else:
            spoken_minute = (f"number:{minute}",)
        half = "am" if hour < 12 else "pm"
        time = ("at", f"number:{(hour + 11) % 12 + 1}", *spoken_minute, half)
    return day + time


def year_prompts(year: int, german: bool = False) -> tuple[str, ...]:
    """2000-2009 (German: 2000-2099) as "two thousand N"; other years in two halves:
    "twenty twenty-six", "nineteen oh five", "nineteen hundred" ("neunzehnhundert neunzig")."""
    century, rest = divmod(year, 100)
    tail = (f"number:{rest}",) if rest else ()
    if century == 20 and (german or rest < 10):
        return ("number:2", "thousand", *tail)
    if german or rest == 0:
        return (f"number:{century}", "hundred", *tail)
    return (f"number:{century}", *(("oh",) if rest < 10 else ()), f"number:{rest}")


def caller_prompts(sender: str) -> tuple[str, ...]:
    """The caller's number digit by digit, or "unknown caller" for anything else."""
    user = sender.split("sip:", 1)[-1].split("@", 1)[0].split(";", 1)[0].lstrip("+")
    if user.isascii() and user.isdigit() and len(user) <= MAX_CALLER_DIGITS:
        return tuple(f"number:{digit}" for digit in user)
    return ("unknown_caller",)


def envelope_prompts(
    received: datetime, now: datetime, sender: str, language: str
) -> tuple[str, ...]:
    """ "received <day> at <time> from <caller>"."""
    return ("received", *when_prompts(received, now, language), "from", *caller_prompts(sender))
