"""HTTP API benchmark: a 10,000-message mailbox listed by 50 clients at once, audio
fetch throughput, and the MP3 conversion of a 60 s message.

    .venv/bin/python -m bench.api [--messages 10000] [--clients 50] [--requests 4]
                                  [--dir DIR] [--postgres | --postgres-url URL]

Starts a real ``voicemail api`` (one process, uvicorn) on a free loopback port over an fs
store in DIR (default var/bench, on the repository's disk), or PostgreSQL (a private
server started for the run, or the URL given), and Kamailio's tables in SQLite; fills
one mailbox and measures from real HTTP clients in this process, each request
authenticated with HTTP Basic as the web page does. Client and server share the
machine's cores, so the figures are for both together.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.storage import DOMAIN, USER, fill
from media_worker import transcode
from media_worker.provisioning.provision import Preferences
from storage import open_storage
from storage.testing import make_wav
from tests.support.api import ApiServer, kamailio_database

PASSWORD = "bench-pw"  # noqa: S105 - a throw-away account in a temporary database
SMALL, SMALL_COUNT = "small", 100  # a mailbox of a more usual size


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def clients_at_once(
    client: httpx.AsyncClient, url: str, clients: int, requests: int, params: dict[str, str]
) -> tuple[list[float], float, int]:
    """``clients`` tasks each making ``requests`` GETs in turn; returns each request's
    milliseconds, the wall-clock seconds of the whole and the bytes received."""
    times: list[float] = []
    received = 0

    async def one_client() -> None:
        nonlocal received
        for _ in range(requests):
            start = time.perf_counter()
            reply = await client.get(url, params=params)
            times.append((time.perf_counter() - start) * 1000)
            reply.raise_for_status()
            received += len(reply.content)

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return times, time.perf_counter() - started, received


def line(label: str, times: list[float], wall: float, received: int) -> str:
    return (
        f"{label:34} p50 {statistics.median(times):8.1f} ms   p99 {percentile(times, 0.99):8.1f} ms"
        f"   {len(times) / wall:7.1f} req/s   {received / wall / 1e6:7.1f} MB/s"
    )


async def each_once(
    client: httpx.AsyncClient, urls: list[str], params: dict[str, str]
) -> tuple[list[float], float, int]:
    """One client per URL, all at once, each fetching its URL once."""
    times: list[float] = []
    received = 0

    async def fetch(url: str) -> None:
        nonlocal received
        start = time.perf_counter()
        reply = await client.get(url, params=params)
        times.append((time.perf_counter() - start) * 1000)
        reply.raise_for_status()
        received += len(reply.content)

    started = time.perf_counter()
    await asyncio.gather(*(fetch(url) for url in urls))
    return times, time.perf_counter() - started, received


async def measure(server: ApiServer, args: argparse.Namespace, long: list[str]) -> None:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(
        base_url=server.base_url + "/api/v1",
        auth=(f"{USER}@{DOMAIN}", PASSWORD),
        limits=limits,
        timeout=120,
    ) as client:
        messages = f"/mailboxes/{DOMAIN}/{USER}/messages"
        first = await client.get(messages)
        count = len(first.json()["messages"])
        print(f"list of {count} messages: {len(first.content) / 1e6:.1f} MB of JSON")
        times, wall, got = await clients_at_once(client, messages, 1, args.requests * 4, {})
        print(line("list, 1 client", times, wall, got))
        times, wall, got = await clients_at_once(client, messages, args.clients, args.requests, {})
        print(line(f"list, {args.clients} clients", times, wall, got))
        times, wall, got = await clients_at_once(
            client, messages, args.clients, args.requests, {"folder": "new"}
        )
        print(line(f"list ?folder=new, {args.clients} clients", times, wall, got))

        small = f"/mailboxes/{DOMAIN}/{SMALL}/messages"
        async with httpx.AsyncClient(
            base_url=client.base_url, auth=(f"{SMALL}@{DOMAIN}", PASSWORD), limits=limits
        ) as other:
            # Logged in once first, as a page does: 50 unknown logins at once from one
            # address would be held as a burst of guesses (docs/api.md).
            (await other.get(small)).raise_for_status()
            times, wall, got = await clients_at_once(
                other, small, args.clients, args.requests * 10, {}
            )
        print(line(f"list of {SMALL_COUNT}, {args.clients} clients", times, wall, got))

        audio = [f"{messages}/{quote(name, safe='')}/audio" for name in long]
        times, wall, got = await clients_at_once(
            client, audio[0], args.clients, args.requests * 4, {}
        )
        print(line(f"60 s WAV audio, {args.clients} clients", times, wall, got))
        # Each message's first MP3 is encoded; the API keeps the last few encodings.
        mp3 = {"format": "mp3"}
        times, wall, got = [], 0.0, 0
        for url in audio[:4]:
            one, took, size = await each_once(client, [url], mp3)
            times, wall, got = times + one, wall + took, got + size
        print(line("60 s as MP3 (encoded), 1 client", times, wall, got))
        times, wall, got = await each_once(client, audio[4:8], mp3)
        print(line("60 s as MP3 (encoded), 4 clients", times, wall, got))
        times, wall, got = await clients_at_once(client, audio[0], 4, 10, mp3)
        print(line("60 s as MP3 (kept), 4 clients", times, wall, got))


def conversion_times() -> None:
    wav = make_wav(60)
    for fmt in ("mp3", "opus"):
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            out = transcode.encode(wav, fmt)
            samples.append((time.perf_counter() - start) * 1000)
        print(
            f"encode 60 s to {fmt:4} in this process: median {statistics.median(samples):6.1f} ms"
            f"   ({len(wav) // 1024} KiB WAV -> {len(out) // 1024} KiB)"
        )


async def fill_store(url: str, messages: int) -> list[str]:
    store = open_storage(url)
    await store.init()  # before the first use: PostgreSQL checks its schema on opening
    async with store:
        await fill(store, messages)
        long = make_wav(60)
        names = [
            await store.put_message(
                DOMAIN, USER, long, sender=f"sip:long{i}@example.com", received_at=1_600_000_000
            )
            for i in range(8)
        ]
        short = make_wav(5)
        for i in range(SMALL_COUNT):
            await store.put_message(
                DOMAIN, SMALL, short, sender=f"sip:c{i}@example.com", received_at=1_700_000_000 + i
            )
    await asyncio.to_thread(os.sync)  # measure the API, not the write-back of the fill
    return names


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4, help="list requests per client")
    parser.add_argument("--dir", default="var/bench", help="where the spool is created")
    parser.add_argument("--postgres", action="store_true", help="a private PostgreSQL store")
    parser.add_argument("--postgres-url", help="an initialisable database for the store")
    args = parser.parse_args()
    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="api-", dir=base))
    with ExitStack() as stack:
        storage_url = args.postgres_url or f"fs://{work / 'spool'}"
        if args.postgres and not args.postgres_url:
            from tests.support.postgres import PostgresServer

            server = stack.enter_context(PostgresServer())
            server.psql("CREATE DATABASE voicemail_bench")
            storage_url = server.url("voicemail_bench")
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        print(f"store: {storage_url.split('://')[0]}")
        print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
        users = {f"{who}@{DOMAIN}": (PASSWORD, Preferences()) for who in (USER, SMALL)}
        db = kamailio_database(work / "kamailio.sqlite", users)
        started = time.perf_counter()
        long = asyncio.run(fill_store(storage_url, args.messages))
        print(f"filled {args.messages} messages in {time.perf_counter() - started:.1f} s")
        with ApiServer(work, storage_url, {"kamailio_db": db}) as api:
            asyncio.run(measure(api, args, long))
        conversion_times()
        print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
