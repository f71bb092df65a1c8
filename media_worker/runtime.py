"""Process-wide settings for a worker process (not applied when the worker is a library)."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import resource
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("voicemail.runtime")

T = TypeVar("T")

# Every RTP packet allocates a few small containers; the default collector threshold (700)
# runs a young-generation pass many times a call per second and, with hundreds of calls,
# full passes over the whole heap show up as multi-millisecond send jitter.
GC_THRESHOLDS = (50_000, 20, 50)

# VOICEMAIL_EVENT_LOOP: "uvloop" (the default when the `fast` extra is installed) or
# "asyncio" (the standard library's loop, always available).
EVENT_LOOP_ENV = "VOICEMAIL_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")


def tune_for_media() -> None:
    """Collect less often, and never scan what was loaded at start-up (prompts, code)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: each call holds two sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def loop_factory(
    choice: str | None = None,
) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop a worker runs on, and its name: uvloop when it is installed (the
    receive path costs less per packet there), unless ``choice`` (default: the
    environment's VOICEMAIL_EVENT_LOOP) says "asyncio". Asking for uvloop without it
    installed is an error, not a silent fallback."""
    wanted = (choice if choice is not None else os.environ.get(EVENT_LOOP_ENV, "")).strip()
    if wanted not in ("", *EVENT_LOOPS):
        raise ValueError(f"{EVENT_LOOP_ENV}: {wanted!r} is not one of {', '.join(EVENT_LOOPS)}")
    if wanted != "asyncio":
        try:
            # By name: mypy and the lint run the same whether the extra is installed.
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if wanted == "uvloop":
                raise ValueError(
                    f"{EVENT_LOOP_ENV}=uvloop, but uvloop is not installed"
                    " (pip install 'kamailio-voicemail[fast]')"
                ) from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return f"uvloop {getattr(uvloop, '__version__', '?')}", factory
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the loop ``loop_factory`` picks (logged once); a bad
    VOICEMAIL_EVENT_LOOP ends the process with status 2 and a line saying why."""
    try:
        name, factory = loop_factory(choice)
    except ValueError as exc:
        main.close()
        log.error("%s", exc)
        raise SystemExit(2) from None
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
