"""Helpers for the Cloud Run runtime tests: an app with subscriptions, and requests through its ASGI app."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx

import overcast
from asgi_support import call
from overcast.runtime.cloudevent import CloudEvent

CONFIG = """\
[app]
entry = "app:app"

[targets.gcp]
topic.signups = "pubsub://demo-signups?project=demo-project"
queue.jobs = "pubsub://demo-jobs?project=demo-project"
"""


class Recorder:
    """Handlers that remember the events they got and fail on demand."""

    def __init__(self) -> None:
        self.events: list[tuple[str, CloudEvent]] = []
        self.fail: set[str] = set()

    def handler(self, name: str) -> Any:
        async def handle(event: CloudEvent) -> None:
            self.events.append((name, event))
            if name in self.fail:
                raise RuntimeError(f"{name} failed")

        handle.__name__ = name
        return handle

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def make_app(folder: Path, seen: Recorder) -> overcast.App:
    """App ``demo``: queue ``jobs`` (handler ``work``), topic ``signups`` (``welcome``, ``audit``),
    schedule ``tick``, and an ASGI app echoing each request."""
    (folder / "overcast.toml").write_text(CONFIG)
    app = overcast.App("demo", config=folder / "overcast.toml")
    jobs = app.queue("jobs")
    signups = app.topic("signups")
    app.subscribe(jobs)(seen.handler("work"))
    app.subscribe(signups, name="welcome")(seen.handler("welcome"))
    app.subscribe(signups, name="audit")(seen.handler("audit"))

    @app.schedule("rate(1 hour)")
    async def tick() -> None:
        seen.events.append(("tick", CloudEvent(type="tick", source="test")))

    async def api(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reply = json.dumps({"path": scope["path"], "method": scope["method"], "body": body.decode()}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": reply})

    app.http(api)
    return app


def post_json(asgi: Any, path: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    return call(
        asgi, "POST", path, json.dumps(payload).encode(), {"content-type": "application/json", **(headers or {})}
    )


def envelope(
    body: Any, *, subscription: str, message_id: str = "m-1", attributes: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A Pub/Sub push body carrying ``body`` as JSON, as Overcast's pubsub provider publishes it."""
    data = base64.b64encode(json.dumps(body).encode()).decode()
    message: dict[str, Any] = {
        "data": data,
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": "2026-01-02T03:04:05.678Z",
        "publish_time": "2026-01-02T03:04:05.678Z",
    }
    if attributes:
        message["attributes"] = attributes
    return {"message": message, "subscription": subscription, **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until something answers at ``url`` (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
