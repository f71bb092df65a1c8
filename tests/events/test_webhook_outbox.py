"""The webhook outbox's scheduling, with httpx's mock transport standing in for the
network: per-endpoint concurrency, Retry-After, redirects retried, the backlog bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from media_worker.changes import Notice
from media_worker.config import WebhookEndpoint, WebhooksConfig
from media_worker.webhooks import outbox as outbox_module
from media_worker.webhooks.outbox import Delivery, WebhookOutbox
from storage import ChangeEvent, ChangeKind
from tests.support.procs import eventually

SECRET = "outbox-test-secret-0123"


def notice() -> Notice:
    return Notice.of(ChangeEvent(ChangeKind.DELETED, "lab.example", "bob", "1700000000+a"), "t")


def config(*names: str, **extra: object) -> WebhooksConfig:
    endpoints = tuple(WebhookEndpoint(n, f"http://{n}.test/hook", SECRET) for n in names)
    values: dict[str, object] = {"retry_delay": 0.05, "retry_max_delay": 0.2, **extra}
    return WebhooksConfig(endpoints=endpoints, **values)  # type: ignore[arg-type]


class Endpoints:
    """The mock network: answers by host, counts POSTs in flight per host."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.most[host] = max(self.most.get(host, 0), self.in_flight[host])
        try:
            await asyncio.sleep(0.01)
            self.requests.append(request)
            return self.answer(request)
        finally:
            self.in_flight[host] -= 1


async def run(tmp_path: Path, settings: WebhooksConfig, endpoints: Endpoints) -> WebhookOutbox:
    box = WebhookOutbox(tmp_path / "webhooks", settings, transport=httpx.MockTransport(endpoints))
    await box.start()
    return box


async def test_many_deliveries_two_at_a_time_per_endpoint(tmp_path: Path) -> None:
    endpoints = Endpoints(lambda request: httpx.Response(204))
    box = await run(tmp_path, config("a", "b"), endpoints)
    try:
        for _ in range(30):
            await box.enqueue(notice())
        await eventually(lambda: box.delivered == 60, 20)
    finally:
        await box.stop()
    assert endpoints.most == {"a.test": 2, "b.test": 2}
    assert len({r.headers["X-Voicemail-Delivery"] for r in endpoints.requests}) == 60
    assert list((tmp_path / "webhooks").glob("*.job")) == []


async def test_retry_after_redirects_and_server_errors_are_retried(tmp_path: Path) -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(302, headers={"Location": "http://elsewhere.test/"}),
        httpx.Response(503),
        httpx.Response(408),
        httpx.Response(200),
    ]
    endpoints = Endpoints(lambda request: answers.pop(0))
    box = await run(tmp_path, config("a"), endpoints)
    try:
        [job] = await box.enqueue(notice())
        await eventually(lambda: box.delivered == 1, 20)
    finally:
        await box.stop()
    assert len(endpoints.requests) == 5
    assert {r.headers["X-Voicemail-Delivery"] for r in endpoints.requests} == {job}
    assert {r.url.host for r in endpoints.requests} == {"a.test"}  # the redirect not taken


def test_retry_after_is_followed_up_to_the_longest_wait() -> None:
    assert outbox_module._retry_after("120") == 120.0
    assert outbox_module._retry_after(" 7 ") == 7.0
    assert outbox_module._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert outbox_module._retry_after(None) is None
    assert outbox_module._retry_after("²") is None
    assert outbox_module._retry_after("9" * 400) is None
    assert outbox_module._retry_after("-5") is None


async def test_the_backlog_of_a_dead_endpoint_is_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoints = Endpoints(lambda request: httpx.Response(500))
    settings = config("a", max_backlog=3, retry_delay=60, retry_max_delay=60)
    box = await run(tmp_path, settings, endpoints)
    try:
        with caplog.at_level(logging.ERROR, logger="voicemail.webhooks"):
            for _ in range(6):
                await box.enqueue(notice())
        assert len(box.pending()) == 3
        rejected = sorted((tmp_path / "webhooks" / "rejected").glob("*.job"))
        assert len(rejected) == 3
        assert "deliveries waiting" in Delivery.from_record(rejected[0].read_bytes()).last_error
        overflow = [r for r in caplog.records if "go straight to rejected" in r.getMessage()]
        assert len(overflow) == 1  # one line, not one per event
    finally:
        await box.stop()


async def test_a_job_of_an_endpoint_no_longer_configured_is_set_aside(tmp_path: Path) -> None:
    endpoints = Endpoints(lambda request: httpx.Response(500))
    first = await run(tmp_path, config("old", retry_delay=60, retry_max_delay=60), endpoints)
    [job] = await first.enqueue(notice())
    await eventually(lambda: len(endpoints.requests) == 1, 10)
    await first.stop()
    second = await run(tmp_path, config("new"), endpoints)
    try:
        await eventually(lambda: (tmp_path / "webhooks" / "rejected" / f"{job}.job").exists(), 10)
    finally:
        await second.stop()
    assert second.pending() == []


async def test_a_delivery_moved_back_from_rejected_is_sent_again(tmp_path: Path) -> None:
    now = [1_000_000.0]
    answers = [httpx.Response(500), httpx.Response(200)]
    endpoints = Endpoints(lambda request: answers.pop(0))
    settings = config("a", retry_delay=1, retry_max_delay=1, give_up_after=1)
    box = WebhookOutbox(
        tmp_path / "webhooks", settings, clock=lambda: now[0],
        transport=httpx.MockTransport(endpoints),
    )  # fmt: skip
    await box.start()
    try:
        [job] = await box.enqueue(notice())
        await eventually(lambda: len(endpoints.requests) == 1, 10)
        now[0] += 5  # past give_up_after: the next attempt sets it aside
        box._wake.set()
        rejected = tmp_path / "webhooks" / "rejected" / f"{job}.job"
        await eventually(rejected.exists, 10)
    finally:
        await box.stop()
    assert "undelivered after 1 attempts" in Delivery.from_record(rejected.read_bytes()).last_error
    rejected.rename(tmp_path / "webhooks" / rejected.name)  # the operator sends it again
    again = WebhookOutbox(
        tmp_path / "webhooks", settings, clock=lambda: now[0],
        transport=httpx.MockTransport(endpoints),
    )  # fmt: skip
    await again.start()
    try:
        await eventually(lambda: again.delivered == 1, 10)
    finally:
        await again.stop()
    assert [r.headers["X-Voicemail-Delivery"] for r in endpoints.requests] == [job, job]
