"""Delivering messages and schedule firings to handlers, and settling messages by the outcome."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.app import ScheduledJob, Subscription
from overcast.resources.queue import Message, Queue
from overcast.runtime.dispatch import (
    QUEUE_MESSAGE,
    SCHEDULE,
    TOPIC_MESSAGE,
    backoff,
    call_handler,
    deliver,
    message_event,
    run_schedule,
    schedule_event,
)
from overcast.runtime.schedule import parse_schedule

MEMORY_TOML = """
[targets.local]
defaults.queue = "memory://{app}-{name}"
defaults.topic = "memory://{app}-{name}"
"""


def _app(tmp_path: Path) -> overcast.App:
    (tmp_path / "overcast.toml").write_text(MEMORY_TOML)
    return overcast.App(f"d{uuid.uuid4().hex[:10]}", config=tmp_path / "overcast.toml")


def _subscribe(app: overcast.App, handler: Any, *, topic: bool = False, max_attempts: int = 3) -> Subscription:
    source = app.topic("events") if topic else app.queue("jobs")
    app.subscribe(source, max_attempts=max_attempts)(handler)
    return app.subscriptions[-1]


def test_message_event_is_a_cloudevent_keeping_the_message() -> None:
    message = Message("m-1", {"id": 7}, {"traceparent": "00-abc-def-01", "Content-Type": "x"}, 2, "r")
    event = message_event(message, app="shop", kind="topic", resource="orders", subscription="mailer")
    assert event.type == TOPIC_MESSAGE
    assert event.source == "overcast://shop/topic/orders"
    assert event.id == "m-1"
    assert event.data == {"id": 7}
    assert event.subject == "mailer"
    assert event.extensions["attempts"] == 2
    assert event.extensions["traceparent"] == "00-abc-def-01"
    assert event.extensions["contenttype"] == "x"
    assert event.original is message
    as_dict = event.to_dict()
    assert as_dict["specversion"] == "1.0" and as_dict["attempts"] == 2
    assert message_event(message, app="shop", kind="queue", resource="jobs").type == QUEUE_MESSAGE


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30, base=0.5, cap=10) == 10


def test_success_acks_the_message(tmp_path: Path) -> None:
    app = _app(tmp_path)
    seen: list[overcast.CloudEvent] = []

    async def handler(event: overcast.CloudEvent) -> None:
        seen.append(event)

    sub = _subscribe(app, handler)

    async def scenario() -> None:
        queue: Queue = sub.source  # type: ignore[assignment]
        sent = await queue.send({"n": 1})
        [message] = await queue.receive(visibility_timeout=0)
        delivery = await deliver(sub, queue, message, app=app.name)
        assert (delivery.outcome, delivery.event_id, delivery.attempt) == ("ok", sent, 1)
        assert await queue.receive(visibility_timeout=0) == []

    asyncio.run(scenario())
    assert seen[0].data == {"n": 1} and seen[0].source.endswith("/queue/jobs")


def test_failure_gives_the_message_back_after_the_backoff_then_dead_letters_it(tmp_path: Path) -> None:
    app = _app(tmp_path)

    def handler(event: overcast.CloudEvent) -> None:
        raise RuntimeError(f"cannot handle {event.id}")

    sub = _subscribe(app, handler, topic=True, max_attempts=2)

    async def scenario() -> None:
        topic = app.resources["events"]
        queue = topic.subscription(sub.name, max_attempts=sub.max_attempts)
        await queue.create()
        await topic.publish({"n": 2})

        [first] = await queue.receive()
        hidden = await deliver(sub, queue, first, app=app.name, retry_delay=lambda attempt: 600.0)
        assert (hidden.outcome, hidden.retry_in) == ("retry", 600.0)
        assert isinstance(hidden.error, RuntimeError)
        assert await queue.receive() == []  # hidden for the backoff

        queue2 = topic.subscription("second", max_attempts=2)
        await queue2.create()
        await topic.publish({"n": 3})
        [again] = await queue2.receive()
        sub2 = Subscription("second", sub.source, handler, max_attempts=2)
        retry = await deliver(sub2, queue2, again, app=app.name, retry_delay=lambda attempt: 0.0)
        assert retry.outcome == "retry"
        [last] = await queue2.receive()
        assert last.attempts == 2
        dead = await deliver(sub2, queue2, last, app=app.name, retry_delay=lambda attempt: 0.0)
        assert dead.outcome == "dead-letter" and dead.retry_in is None
        assert await queue2.receive() == []
        [parked] = await queue2.dead_letters().receive()
        assert parked.id == again.id and parked.body == {"n": 3}

    asyncio.run(scenario())


def test_sync_handlers_run_in_a_thread_and_async_ones_on_the_loop() -> None:
    where: dict[str, threading.Thread] = {}
    event = overcast.CloudEvent(type="t", source="s")

    def sync_handler(_: overcast.CloudEvent) -> str:
        where["sync"] = threading.current_thread()
        return "sync"

    async def async_handler(_: overcast.CloudEvent) -> str:
        where["async"] = threading.current_thread()
        return "async"

    async def scenario() -> list[Any]:
        return [await call_handler(sync_handler, event), await call_handler(async_handler, event)]

    assert asyncio.run(scenario()) == ["sync", "async"]
    assert where["async"] is threading.main_thread()
    assert where["sync"] is not threading.main_thread()


def test_schedule_handlers_take_the_event_or_nothing() -> None:
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    got: list[Any] = []

    def no_args() -> None:
        got.append("none")

    async def with_event(event: overcast.CloudEvent) -> None:
        got.append(event)

    def failing() -> None:
        raise ValueError("boom")

    jobs = [
        ScheduledJob(n, parse_schedule("rate(1 hour)"), h)
        for n, h in (("tick", no_args), ("tock", with_event), ("bad", failing))
    ]

    async def scenario() -> list[str]:
        return [(await run_schedule(job, app="shop", at=at)).outcome for job in jobs]

    assert asyncio.run(scenario()) == ["ok", "ok", "failed"]
    assert got[0] == "none"
    event = got[1]
    assert event.type == SCHEDULE
    assert event.source == "overcast://shop/schedule/tock"
    assert event.time == at
    assert event.data == {"schedule": "rate(1 hour)", "name": "tock"}
    assert event.id == schedule_event(jobs[1], app="shop", at=at).id


@pytest.mark.parametrize("attempt", [1, 3])
def test_a_handler_that_succeeds_later_is_acked(tmp_path: Path, attempt: int) -> None:
    app = _app(tmp_path)
    calls: list[int] = []

    async def flaky(event: overcast.CloudEvent) -> None:
        calls.append(event.extensions["attempts"])
        if event.extensions["attempts"] < attempt:
            raise RuntimeError("not yet")

    sub = _subscribe(app, flaky, max_attempts=5)

    async def scenario() -> list[str]:
        queue: Queue = sub.source  # type: ignore[assignment]
        await queue.send("x")
        outcomes = []
        while True:
            messages = await queue.receive(visibility_timeout=0)
            if not messages:
                return outcomes
            outcomes.append((await deliver(sub, queue, messages[0], app=app.name, retry_delay=lambda a: 0)).outcome)

    assert asyncio.run(scenario()) == ["retry"] * (attempt - 1) + ["ok"]
    assert calls == list(range(1, attempt + 1))
