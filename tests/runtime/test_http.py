"""The buffered ASGI runner Lambda and Azure Functions share: the whole response collected,
the client connected until it is complete, errors a bare 500 logged with the request id."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import pytest

from overcast.runtime.http import ERROR_BODY, run_http

SCOPE = {"type": "http", "method": "POST", "path": "/orders", "headers": []}


def _run(asgi: Any, errors: deque[int] | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return asyncio.run(
        run_http(asgi, dict(SCOPE), b'{"n": 1}', "req-7", log=logging.getLogger("test.http"), errors=errors)
    )


def test_the_body_arrives_at_once_and_the_response_is_collected() -> None:
    received: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"he", "more_body": True})
        await send({"type": "http.response.body", "body": b"llo"})

    assert _run(app) == (201, [(b"x-a", b"1")], b"hello")
    assert received == [{"type": "http.request", "body": b'{"n": 1}', "more_body": False}]


def test_the_client_stays_until_the_response_is_complete() -> None:
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

        async def watch() -> None:
            message = await receive()
            order.append(message["type"])

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0)
        order.append("sending")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await watcher

    assert _run(app)[0] == 200
    assert order == ["sending", "http.disconnect"]


def test_an_unhandled_error_is_a_bare_500_logged_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("password hunter2")

    errors: deque[int] = deque()
    with caplog.at_level(logging.ERROR, logger="test.http"):
        status, headers, body = _run(app, errors)
    assert (status, body) == (500, ERROR_BODY) and b"hunter2" not in body
    assert (b"content-length", str(len(ERROR_BODY)).encode()) in headers
    [record] = [r for r in caplog.records if r.name == "test.http"]
    assert "POST /orders failed (request req-7)" in record.getMessage() and record.exc_info is not None
    assert list(errors) == [1]


def test_no_response_is_a_500_and_an_error_after_the_response_leaves_it_standing() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def late(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        raise RuntimeError("after the fact")

    async def twice(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})

    errors: deque[int] = deque()
    assert _run(silent, errors)[0] == 500
    assert _run(late, errors) == (202, [], b"done")
    assert _run(twice, errors)[0] == 500  # an ASGI protocol error is the app's error
    assert len(errors) == 3
