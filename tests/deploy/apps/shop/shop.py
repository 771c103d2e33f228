"""A test app declaring one of everything a plan renders (no third-party imports)."""

from __future__ import annotations

import json
from typing import Any

import overcast

app = overcast.App("shop")
orders = app.kv("orders")
catalog = app.kv("catalog", allow=("read",))
uploads = app.bucket("uploads")
jobs = app.queue("jobs")
events = app.topic("events")
cache = app.cache("cache")
payment_key = app.secret("payment-key")


async def api(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET /orders/ID: the order as JSON (a plain ASGI app: the package needs nothing else)."""
    if scope["type"] != "http":
        return
    item = await orders.get(scope["path"].rsplit("/", 1)[-1])
    status, body = (404, b"{}") if item is None else (200, json.dumps(item.value).encode())
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


app.http(api)


@app.subscribe(jobs, max_attempts=3)
async def work(event: overcast.CloudEvent) -> None:
    await orders.put(str(event.data["id"]), event.data)


@app.subscribe(events)
async def audit(event: overcast.CloudEvent) -> None:
    await uploads.put(f"audit/{event.id}.json", json.dumps(event.data).encode())


@app.schedule("cron(0 3 * * ? *)")
async def nightly() -> None:
    async for _ in orders.scan():
        pass


@app.on(uploads, events=("created",), prefix="incoming/")
async def on_upload(event: overcast.CloudEvent) -> None:
    await jobs.send({"id": event.subject})


@app.on("arn:aws:dynamodb:*:*:table/legacy-catalog/stream/*")
async def catalog_changed(event: overcast.CloudEvent) -> None:
    await events.publish({"changed": event.subject})
