"""Run in a fresh process with the function role's credentials, for the shop app whose
``overcast.toml`` declares ``allow`` and ``existing`` per resource (test_deploy_iam): each
operation on the provider the target names. Prints one JSON object, operation -> "ok" or
the error's class name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from iam_operations import run

import overcast

ACCOUNT = "123456789012"  # moto's


def operations() -> dict[str, Callable[[], Awaitable[Any]]]:
    orders = overcast.open_kv("dynamodb://shop-orders")  # allow = ["read"] in overcast.toml
    catalog = overcast.open_kv(f"dynamodb://legacy-catalog?region=eu-west-1&account={ACCOUNT}")  # by ARN: allow read
    uploads = overcast.open_bucket("s3://shop-uploads-example/data")  # allow = ["write"]
    jobs = overcast.open_queue(f"sqs://shop-jobs?region=eu-west-1&account={ACCOUNT}")  # by ARN, subscribed
    events = overcast.open_topic("sns://shop-events")  # allow = []

    async def receive() -> None:
        await jobs.receive(max_messages=1, wait=1)

    return {
        "allowed.kv.get": lambda: orders.get("o1"),
        "allowed.kv_by_arn.get": lambda: catalog.get("c1"),
        "allowed.bucket.put": lambda: uploads.put("a.txt", b"x"),
        "allowed.queue_by_arn.send": lambda: jobs.send({"id": "j1"}),
        "allowed.queue_by_arn.receive": receive,
        "denied.kv.put": lambda: orders.put("o1", {}),
        "denied.kv_by_arn.put": lambda: catalog.put("c1", {}),
        "denied.bucket.delete": lambda: uploads.delete("a.txt"),  # it reads whether the object existed
        "denied.bucket.get": lambda: uploads.get("a.txt"),
        "denied.bucket.list": lambda: _drain(uploads.list("")),
        "denied.topic.publish": lambda: events.publish({"id": "e1"}),
    }


async def _drain(iterator: Any) -> list[Any]:
    return [x async for x in iterator]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(operations()))))
