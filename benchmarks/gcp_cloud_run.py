"""The Cloud Run runtime against the bare ASGI app: per-request overhead, in process.

HTTP: a Starlette route (``GET /hello`` answering ``hi``) called as the bare ASGI app and
through ``cloud_run_app(app)``, in interleaved rounds on one loop. Goal: at most 1.05x
(the wrapper only looks at the path before handing the request on).

Push: a Pub/Sub push delivery (``POST`` of the ``{"message", "subscription"}`` envelope)
handled by ``cloud_run_app`` (routing by subscription, base64 and JSON decoding, the
CloudEvent, ``dispatch.deliver``) against the same done by hand in a Starlette route
(decode, call the handler, answer 204): what the runtime costs over writing it yourself.

    .venv/bin/python benchmarks/gcp_cloud_run.py [--quick]
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, report

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
[app]
entry = "app:app"

[targets.gcp]
topic.signups = "pubsub://bench-signups?project=bench"
events = { verify = "off" }  # the hand-written baseline checks no token either
"""


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "https",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": headers, "client": ("1.2.3.4", 0), "server": ("example.com", 443),
    }  # fmt: skip


def main() -> None:
    args = arguments(__doc__ or "")
    rounds, calls = (3, 200) if args.quick else (15, 2000)
    os.environ["OVERCAST_TARGET"] = "gcp"
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    import overcast
    from overcast.providers.gcp import cloud_run_app

    received: list[Any] = []

    async def handler(event: Any) -> None:
        received.append(event.data)

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    async def push(request: Request) -> Response:  # the hand-written baseline
        envelope = await request.json()
        message = envelope["message"]
        await handler(type("E", (), {"data": json.loads(base64.b64decode(message["data"]))})())
        return Response(status_code=204)

    bare = Starlette(routes=[Route("/hello", hello), Route("/push", push, methods=["POST"])])
    folder = Path(tempfile.mkdtemp())
    (folder / "overcast.toml").write_text(CONFIG)
    app = overcast.App("bench", config=folder / "overcast.toml")
    app.http(bare)
    signups = app.topic("signups")
    app.subscribe(signups, name="welcome")(handler)
    ours = cloud_run_app(app)

    loop = asyncio.new_event_loop()
    body = json.dumps(
        {
            "message": {
                "data": base64.b64encode(json.dumps({"id": "u1", "name": "Ada"}).encode()).decode(),
                "messageId": "1",
                "publishTime": "2026-01-02T03:04:05Z",
                "attributes": {"origin": "api"},
            },
            "subscription": "projects/bench/subscriptions/bench-signups-welcome",
        }
    ).encode()
    json_headers = [(b"host", b"example.com"), (b"content-type", b"application/json")]

    def caller(asgi: Any, method: str, path: str, payload: bytes, expect: int) -> Any:
        scope = _scope(method, path, json_headers)

        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async def many() -> None:
            for _ in range(calls):
                await asgi(dict(scope), receive, send)
            if set(status) != {expect}:
                raise RuntimeError(f"{path}: answered {set(status)}, expected {expect}")
            status.clear()

        def timed() -> float:
            start = time.perf_counter()
            loop.run_until_complete(many())
            return (time.perf_counter() - start) / calls * 1e6

        return timed

    rows = []
    for label, ours_run, base_run, goal in (
        (
            "HTTP GET /hello",
            caller(ours, "GET", "/hello", b"", 200),
            caller(bare, "GET", "/hello", b"", 200),
            "<= 1.05x",
        ),
        (
            "Pub/Sub push to a handler",
            caller(ours, "POST", "/_overcast/pubsub", body, 204),
            caller(bare, "POST", "/push", body, 204),
            "(runtime vs hand-written)",
        ),
    ):
        mine, base = Result("cloud_run_app", "us"), Result("bare ASGI", "us")
        interleave(rounds, (mine, ours_run), (base, base_run))
        print(f"{label}: bare {base.median:.1f} us, cloud_run_app {mine.median:.1f} us per request")
        rows.append((f"per request, {label}", mine, base, goal))
    assert received, "the handler never ran"
    report("Cloud Run runtime: per-request time, cloud_run_app over the bare ASGI app", rows)
    loop.close()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
