"""Storage benchmark: put of a 60 s message, list and count of a 10,000-message mailbox.

    .venv/bin/python -m bench.storage [--messages 10000] [--dir DIR] [--postgres-url URL]

Runs against the fs backend in DIR (default var/bench, on the repository's disk, not tmpfs)
and against PostgreSQL: the URL given, or a private server started for the run. Targets:
list+count of 10,000 messages under 100 ms on fs and under 50 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

from storage import Counts, Storage, open_storage
from storage.testing import make_wav

DOMAIN, USER = "bench.example", "big"
TARGETS_MS = {"fs": 100.0, "postgres": 50.0}
ROUNDS = 30


async def timed(fn: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    """Wall-clock milliseconds of ``rounds`` sequential calls."""
    return (await timed_together([fn], rounds))[0]


async def timed_together(
    fns: list[Callable[[], Awaitable[object]]], rounds: int
) -> list[list[float]]:
    """Wall-clock milliseconds of each of ``fns``, called in turn ``rounds`` times, so that
    whatever else the machine does over the run weighs on all of them alike."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, times in zip(fns, samples, strict=True):
            start = time.perf_counter()
            await fn()
            times.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):7.2f} ms   p95 {p95:7.2f} ms"


async def fill(store: Storage, count: int, batch: int = 32) -> None:
    """Put ``count`` messages of 1 s, the shortest the worker keeps by default
    (``voicemail.min_record_time``); listing never reads audio, so longer ones cost the same."""
    audio = make_wav(1.0)
    for start in range(0, count, batch):
        await asyncio.gather(
            *(
                store.put_message(
                    DOMAIN,
                    USER,
                    audio,
                    sender=f"sip:caller{i}@example.com",
                    received_at=1_700_000_000 + i,
                )
                for i in range(start, min(start + batch, count))
            )
        )
    # Half the box has been listened to.
    for info in (await store.list_mailbox(DOMAIN, USER))[::2]:
        await store.mark_read(DOMAIN, USER, info.name)


async def bench_backend(label: str, url: str, messages: int) -> bool:
    store = open_storage(url)
    await store.init()
    async with store:
        audio = make_wav(60)
        put = await timed(
            lambda: store.put_message(DOMAIN, "put", audio, sender="alice", received_at=1), 10
        )
        print(f"{label:9} put 60 s message ({len(audio) // 1024} KiB)      {summary(put)}")
        started = time.perf_counter()
        await fill(store, messages)
        print(f"{label:9} filled {messages} messages in {time.perf_counter() - started:.1f} s")
        # Flush what the fill wrote, so the timings measure listing a mailbox, not the
        # kernel writing back 10,000 files just created beside it.
        await asyncio.to_thread(os.sync)

        async def list_and_count() -> None:
            listed = await store.list_mailbox(DOMAIN, USER)
            counts = await store.count(DOMAIN, USER)
            assert len(listed) == counts.total == messages, (len(listed), counts)

        # The first listing after a start decodes every file name (fs) or plans the query
        # (PostgreSQL); later ones reuse that work, so the first is shown on its own.
        (first,) = await timed(list_and_count, 1)

        async def list_with_counts() -> None:
            Counts.of(await store.list_mailbox(DOMAIN, USER))

        both, count, listing, one_pass = await timed_together(
            [
                list_and_count,
                lambda: store.count(DOMAIN, USER),
                lambda: store.list_mailbox(DOMAIN, USER),
                list_with_counts,
            ],
            ROUNDS,
        )
        print(f"{label:9} first list+count after a start      {first:7.2f} ms")
        print(f"{label:9} list+count of {messages}             {summary(both)}")
        print(f"{label:9} count alone                        {summary(count)}")
        print(f"{label:9} list alone                         {summary(listing)}")
        print(f"{label:9} list, counts from the listing      {summary(one_pass)}")
    target = TARGETS_MS[store.backend]
    ok = statistics.median(both) < target
    verdict = "meets" if ok else "MISSES"
    print(f"{label:9} {verdict} the list+count target of {target:.0f} ms\n")
    return ok


async def run(args: argparse.Namespace, pg_url: str) -> bool:
    spool = Path(args.spool)
    try:
        fs_ok = await bench_backend("fs", f"fs://{spool}", args.messages)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    pg_ok = await bench_backend("postgres", pg_url, args.messages)
    return fs_ok and pg_ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dir", default="var/bench", help="where the fs spool is created")
    parser.add_argument(
        "--postgres-url", help="an initialisable database (default: a private server)"
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        base = Path(args.dir).resolve()
        base.mkdir(parents=True, exist_ok=True)
        args.spool = tempfile.mkdtemp(prefix="spool-", dir=base)
        pg_url = args.postgres_url
        if pg_url is None:
            from tests.support.postgres import PostgresServer

            server = stack.enter_context(PostgresServer())
            server.psql("CREATE DATABASE voicemail_bench")
            pg_url = server.url("voicemail_bench")
        ok = asyncio.run(run(args, pg_url))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
