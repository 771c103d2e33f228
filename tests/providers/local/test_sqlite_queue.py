"""What is particular to the SQLite queue and topic: the file, processes, receipts, fan-out rules.

The delivery rules every queue shares (visibility, delay, nack, dead letters) are in
the conformance suite.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.errors import ConfigError, InvalidArgument, ProviderError
from overcast.providers.local.sqlite_queue import SQLiteQueue, SQLiteTopic
from overcast.resources.queue import Message, Queue


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}" + (f"?{query}" if query else "")  # absolute: sqlite:////tmp/...


def _redelivered(queue: Queue, message: Message, *, visibility_timeout: float = 30.0) -> Message:
    """Receive until ``message`` comes back (its visibility timeout ran out)."""
    for _ in range(100):
        for got in queue.sync.receive(max_messages=10, visibility_timeout=visibility_timeout, wait=1):
            if got.id == message.id:
                return got
    raise AssertionError(f"message {message.id} was not delivered again")


def test_opened_by_the_registry_with_relative_path(tmp_path: Path) -> None:
    queue = overcast.open_queue("sqlite:///sub/jobs.db", base_dir=tmp_path)
    topic = overcast.open_topic("sqlite:///sub/events.db", base_dir=tmp_path)
    assert isinstance(queue, SQLiteQueue) and isinstance(topic, SQLiteTopic)
    assert queue.capabilities == {"delay", "dead_letter", "multiprocess", "depth", "peek"}
    queue.sync.create()
    queue.sync.create()
    topic.sync.create()
    assert (tmp_path / "sub" / "jobs.db").is_file()
    assert (tmp_path / "sub" / "events.db").is_file()
    queue.close()
    topic.close()


def test_messages_survive_closing_and_reopening(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    first = overcast.open_queue(url)
    ids = [first.sync.send({"n": n}, attributes={"n": str(n)}) for n in range(3)]
    in_flight = first.sync.receive(visibility_timeout=60)
    assert [m.id for m in in_flight] == ids[:1]
    first.close()

    again = overcast.open_queue(url)
    rest = again.sync.receive(max_messages=10, visibility_timeout=60)
    assert [(m.id, m.body, m.attributes) for m in rest] == [
        (ids[1], {"n": 1}, {"n": "1"}),
        (ids[2], {"n": 2}, {"n": "2"}),
    ]
    # The receipt of the delivery made before reopening still acks it.
    again.sync.ack(in_flight[0])
    for message in rest:
        again.sync.nack(message)
    assert sorted(m.id for m in again.sync.receive(max_messages=10)) == sorted(ids[1:])
    again.close()


def test_dead_letters_are_kept_in_the_same_file(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db", "max_attempts=1")
    queue = overcast.open_queue(url)
    sent = queue.sync.send("poison")
    first = queue.sync.receive(visibility_timeout=0)
    assert [m.id for m in first] == [sent]
    assert queue.sync.receive() == []  # this receive moved it
    queue.close()

    reopened = overcast.open_queue(url)
    dead = reopened.dead_letters()
    assert "dead_letters=true" in str(dead.location)
    got = dead.sync.receive()
    assert [(m.id, m.body) for m in got] == [(sent, "poison")]
    with pytest.raises(InvalidArgument, match="dead-letter queue has no dead-letter queue"):
        dead.dead_letters()
    # The dead letters' URL opens them too.
    by_url = overcast.open_queue(str(dead.location))
    dead.sync.nack(got[0])
    assert [m.id for m in by_url.sync.receive()] == [sent]
    for q in (reopened, by_url):
        q.close()


def test_stale_receipt_neither_acks_nor_nacks_the_newer_delivery(tmp_path: Path) -> None:
    queue = overcast.open_queue(_url(tmp_path / "q.db"))
    queue.sync.send("job")
    (first,) = queue.sync.receive(visibility_timeout=0.2)
    second = _redelivered(queue, first)
    assert (second.id, second.attempts) == (first.id, 2)
    assert second.receipt != first.receipt

    queue.sync.ack(first)  # ignored: the message was delivered again since
    queue.sync.nack(first)  # ignored too: the newer delivery stays invisible
    assert queue.sync.receive(max_messages=10) == []

    queue.sync.nack(second)
    (third,) = queue.sync.receive(visibility_timeout=30)
    assert (third.id, third.attempts) == (first.id, 3)
    queue.sync.ack(third)
    queue.sync.nack(third)  # the message is gone: nothing to give back
    assert queue.sync.receive(max_messages=10) == []
    queue.close()


def _consume(url: str, start: Any, results: Any, threads: int) -> None:
    """Child process: receive with ``threads`` threads, each over its own connection, until the queue is dry."""
    got: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        queue = overcast.open_queue(url)
        mine: list[str] = []
        while True:
            messages = queue.sync.receive(max_messages=3, visibility_timeout=120, wait=0.5)
            if not messages:
                break
            mine.extend(m.id for m in messages)
        queue.close()
        with lock:
            got.extend(mine)

    start.wait(60)
    workers = [threading.Thread(target=drain) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(got)


def test_processes_never_share_a_delivery_and_miss_nothing(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    queue = overcast.open_queue(url)
    sent = {queue.sync.send(n) for n in range(300)}
    queue.close()

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_consume, args=(url, start, results, 2)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    batches = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    delivered = [message_id for batch in batches for message_id in batch]
    assert len(delivered) == len(set(delivered)), "a message was delivered twice within its visibility timeout"
    assert set(delivered) == sent


def test_threads_with_their_own_connections_never_share_a_delivery(tmp_path: Path) -> None:
    url = _url(tmp_path / "q.db")
    sender = overcast.open_queue(url)
    sent = {sender.sync.send(n) for n in range(200)}
    got: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def drain() -> None:
        queue = overcast.open_queue(url)
        barrier.wait()
        while messages := queue.sync.receive(max_messages=2, visibility_timeout=120):
            with lock:
                got.extend(m.id for m in messages)
        queue.close()

    workers = [threading.Thread(target=drain) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(got) == len(set(got)) and set(got) == sent
    sender.close()


def test_topic_drops_messages_published_before_any_subscription(tmp_path: Path) -> None:
    topic = overcast.open_topic(_url(tmp_path / "t.db"))
    topic.sync.publish("nobody listens")
    eager = topic.subscription("eager")
    eager.sync.create()
    lazy = topic.subscription("lazy")
    assert lazy.sync.receive() == []  # the first receive registers the subscription
    message_id = topic.sync.publish({"hello": 1}, attributes={"k": "v"})
    for sub in (eager, lazy):
        (got,) = sub.sync.receive(max_messages=10)
        assert (got.id, got.body, got.attributes) == (message_id, {"hello": 1}, {"k": "v"})
        sub.sync.ack(got)
    topic.close()


def test_subscription_url_reopens_it_in_another_instance(tmp_path: Path) -> None:
    topic = overcast.open_topic(_url(tmp_path / "t.db"))
    sub = topic.subscription("audit", max_attempts=2)
    assert sub.location.options == {"subscription": "audit", "max_attempts": "2"}
    sub.sync.create()
    topic.close()

    publisher = overcast.open_topic(_url(tmp_path / "t.db"))
    message_id = publisher.sync.publish("event")
    consumer = overcast.open_queue(str(sub.location))
    assert isinstance(consumer, SQLiteQueue) and consumer.max_attempts == 2
    assert [m.id for m in consumer.sync.receive()] == [message_id]
    with pytest.raises(InvalidArgument, match="max_attempts"):
        publisher.subscription("audit", max_attempts=0)
    publisher.close()
    consumer.close()


def test_async_receive_waits_for_a_message_sent_meanwhile(tmp_path: Path) -> None:
    queue = overcast.open_queue(_url(tmp_path / "q.db"))

    async def scenario() -> list[Message]:
        async def send_later() -> None:
            await asyncio.sleep(0.1)
            await queue.send("late")

        task = asyncio.create_task(send_later())
        got = await queue.receive(wait=10)
        await task
        return got

    assert [m.body for m in asyncio.run(scenario())] == ["late"]
    queue.close()


def test_a_cancelled_wait_claims_nothing(tmp_path: Path) -> None:
    queue = overcast.open_queue(_url(tmp_path / "q.db"))

    async def scenario() -> None:
        waiting = asyncio.create_task(queue.receive(wait=10))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await queue.send("after")
        await asyncio.sleep(0.3)  # a poll left running would claim the message meanwhile

    asyncio.run(scenario())
    assert [m.body for m in queue.sync.receive()] == ["after"]
    queue.close()


def test_bad_options_and_files_give_overcast_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        overcast.open_queue(_url(tmp_path / "q.db", "max_attempts=zero"))
    with pytest.raises(ConfigError, match="max_attempts"):
        overcast.open_topic(_url(tmp_path / "t.db", "max_attempts=-1"))

    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    with pytest.raises(ProviderError, match=r"a-folder\.db") as caught:
        overcast.open_queue(_url(folder), name="jobs").sync.send(1)
    assert caught.value.resource == "jobs"

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ProviderError, match=r"garbage\.db"):
        overcast.open_queue(_url(garbage), name="jobs").sync.receive()
