"""Run in a fresh process with the function role's credentials: every operation the shop app's
declarations allow, and the same operations where nothing is declared. Prints one JSON
object, operation -> "ok" or the error's class name."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import overcast
from overcast.loader import load_app


async def allowed(app: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    orders = app.resources["orders"]
    catalog = app.resources["catalog"]
    uploads = app.resources["uploads"]
    jobs = app.resources["jobs"]
    events = app.resources["events"]
    secret = app.resources["payment-key"]
    big = overcast.open_bucket("s3://shop-uploads-example/data?multipart_threshold=5242880&part_size=5242880")

    async def queue_round_trip() -> None:
        await jobs.send({"id": "j1"})
        got = await jobs.receive(max_messages=1, wait=2)
        await jobs.nack(got[0], delay=0)
        again = await jobs.receive(max_messages=1, wait=2)
        await jobs.ack(again[0])

    async def subscription_queue() -> None:  # what Lambda's event source mapping does with the role
        queue = events.subscription("audit")
        await events.publish({"id": "e1"})
        got = await queue.receive(max_messages=1, wait=2)
        await queue.ack(got[0])

    async def scan() -> None:
        assert [item.key async for item in orders.scan("o")] == ["o1", "o2", "o3"]

    return {
        "kv.put": lambda: orders.put("o1", {"n": 1}),
        "kv.put_if_absent": lambda: orders.put("o2", {"n": 2}, if_absent=True),
        "kv.put_many": lambda: orders.put_many({"o3": {"n": 3}}),
        "kv.get": lambda: orders.get("o1"),
        "kv.get_many": lambda: orders.get_many(["o1", "o2"]),
        "kv.scan": scan,
        "kv.delete": lambda: orders.delete("o3"),
        "kv.ping": orders.ping,
        "kv.read_only.get": lambda: catalog.get("c1"),
        "bucket.put": lambda: uploads.put("a.txt", b"hello", content_type="text/plain"),
        "bucket.get": lambda: uploads.get("a.txt", start=1, end=3),
        "bucket.head": lambda: uploads.head("a.txt"),
        "bucket.list": lambda: _drain(uploads.list("")),
        "bucket.multipart": lambda: big.put("big.bin", b"x" * (5 * 1024 * 1024 + 1)),
        "bucket.delete": lambda: uploads.delete("a.txt"),
        "bucket.ping": uploads.ping,
        "queue.round_trip": queue_round_trip,
        "topic.publish": lambda: events.publish({"id": "e0"}),
        "topic.subscription_queue": subscription_queue,
        "secret.get": secret.get,
    }


def undeclared() -> dict[str, Callable[[], Awaitable[Any]]]:
    other_kv = overcast.open_kv("dynamodb://other-table")
    catalog = overcast.open_kv("dynamodb://legacy-catalog")
    other_bucket = overcast.open_bucket("s3://other-bucket-example")
    outside_prefix = overcast.open_bucket("s3://shop-uploads-example/private")
    other_queue = overcast.open_queue("sqs://other-queue")
    other_topic = overcast.open_topic("sns://other-topic")
    other_secrets = overcast.open_secrets("secretsmanager://other")
    return {
        "kv.other.get": lambda: other_kv.get("k"),
        "kv.other.put": lambda: other_kv.put("k", {}),
        "kv.read_only.put": lambda: catalog.put("c1", {}),
        "bucket.other.put": lambda: other_bucket.put("a", b"x"),
        "bucket.other.get": lambda: other_bucket.get("a"),
        "bucket.outside_prefix.put": lambda: outside_prefix.put("a", b"x"),
        "queue.other.send": lambda: other_queue.send({}),
        "topic.other.publish": lambda: other_topic.publish({}),
        "secret.other.get": lambda: other_secrets.get("key"),
    }


async def _drain(iterator: Any) -> list[Any]:
    return [x async for x in iterator]


async def run(operations: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, str]:
    results: dict[str, str] = {}
    for name, operation in operations.items():
        try:
            await operation()
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"{type(exc).__name__}: {exc}"[:300]
    return results


async def main(folder: str) -> None:
    app = load_app(folder)
    results = await run(await allowed(app))
    results.update(await run(undeclared()))
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
