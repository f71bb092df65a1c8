"""One clock for every outgoing RTP stream.

A coroutine per stream stops keeping time near a thousand streams a core; instead one
timer ticks every millisecond and serves the streams whose 20 ms slot falls in that tick,
so sends spread evenly over the period and each stream keeps an absolute schedule.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

PERIOD = 0.020
TICK = 0.001
SLOTS = round(PERIOD / TICK)


class Paced(Protocol):
    due: float  # monotonic time the next packet is due

    def send_due(self, now: float) -> None:
        """Send the packet(s) due by ``now`` and advance ``due`` by whole periods."""


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._slots: list[set[Paced]] = [set() for _ in range(SLOTS)]
        self._count = 0
        self._handle: asyncio.TimerHandle | None = None
        self._tick = 0  # absolute tick number
        self.lateness: list[float] | None = None  # set to a list to sample send lateness

    def __len__(self) -> int:
        return self._count

    def add(self, stream: Paced) -> None:
        """Start pacing ``stream``; its first packet goes out at the tick after ``due``.

        ``due`` is moved to the middle of a tick, so that adding whole periods to it never
        drifts across a tick boundary (and out of the stream's slot) by float rounding.
        """
        stream.due = (int(stream.due / TICK) + 1.5) * TICK
        slot = int(stream.due / TICK) % SLOTS
        self._slots[slot].add(stream)
        self._count += 1
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._tick = int(self.clock() / TICK)
            self._handle = loop.call_at(self._tick * TICK, self._on_tick)

    def remove(self, stream: Paced) -> None:
        for slot in self._slots:
            if stream in slot:
                slot.discard(stream)
                self._count -= 1
        if self._count == 0 and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _on_tick(self) -> None:
        now = self.clock()
        current = int(now / TICK)
        # Serve every slot from the last tick served up to now (a late loop catches up).
        first = self._tick if current - self._tick < SLOTS else current - SLOTS + 1
        sample = self.lateness
        for tick in range(first, current + 1):
            for stream in list(self._slots[tick % SLOTS]):
                if stream.due <= now + TICK / 2:
                    if sample is not None:
                        sample.append(now - stream.due)
                    stream.send_due(now)
        self._tick = current + 1
        if self._count:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_at(self._tick * TICK, self._on_tick)
        else:
            self._handle = None
