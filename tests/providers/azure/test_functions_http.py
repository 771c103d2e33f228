"""The HTTP function of ``function_app(app)``: requests built by azure-functions' own converter
reach the app with method, path, query, headers and body intact, and the response reaches
the host with status, headers, cookies and body intact. Also the comparison with
azure-functions' ``AsgiMiddleware`` / ``AsgiFunctionApp`` that decided to use our adapter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azf_support import Context, Worker, host_response, http_request, make_app
from fastapi import FastAPI, Request, Response
from flask import Flask, request

from overcast.providers.azure import function_app
from overcast.providers.azure.functions_http import AsgiHttpFunction

BASE = "https://demo.azurewebsites.net"


def echo_api() -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        state["started"] = True
        yield {"greeting": "hello"}

    api = FastAPI(lifespan=lifespan)

    @api.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def echo(rest: str, req: Request) -> Response:
        body = await req.body()
        payload = {
            "method": req.method,
            "path": req.url.path,
            "raw_path": req.scope["raw_path"].decode(),
            "rest": rest,
            "query": req.scope["query_string"].decode(),
            "args": sorted(req.query_params.multi_items()),
            "headers": {k: v for k, v in req.headers.items() if k.startswith("x-")},
            "body": body.decode("latin-1"),
            "client": req.client.host if req.client else None,
            "greeting": getattr(req.state, "greeting", None),
        }
        return Response(json.dumps(payload), status_code=201, media_type="application/json")

    @api.get("/cookies")
    async def cookies() -> Response:
        response = Response(b"\x00\xff binary", media_type="application/octet-stream", status_code=202)
        response.set_cookie("a", "1")
        response.set_cookie("b", "2", httponly=True)
        response.headers.append("x-multi", "one")
        response.headers.append("x-multi", "two")
        return response

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    return api


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path)
    app.http(echo_api())
    w = Worker(function_app(app))
    yield w
    w.close()


def call(worker: Worker, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = worker.call("http", http_request(method, BASE + path, **kwargs), Context())
    assert isinstance(response, func.HttpResponse)
    return host_response(response)


def test_the_http_function_takes_every_route_and_method(worker: Worker) -> None:
    fn = worker.functions["http"]
    binding = json.loads(fn.get_function_json())["bindings"][0]
    assert binding["type"] == "httpTrigger" and binding["route"] == "{*route}"
    assert set(binding["methods"]) == {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
    assert binding["authLevel"] == "ANONYMOUS"


def test_request_reaches_the_app_intact(worker: Worker) -> None:
    body = json.dumps({"name": "Ada", "note": "é"}).encode()
    out = call(
        worker,
        "POST",
        "/echo/a%2Fb/c?x=1&x=2&y=%C3%A9&empty=",
        headers={"Content-Type": "application/json", "X-Trace": "t-1", "x-forwarded-for": "203.0.113.9:51234"},
        body=body,
    )
    assert out["status"] == 201
    assert out["headers"]["content-type"] == "application/json"
    seen = json.loads(out["body"])
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo/a/b/c"
    assert seen["raw_path"] == "/echo/a%2Fb/c"  # the encoded slash survives, unlike AsgiMiddleware
    assert seen["query"] == "x=1&x=2&y=%C3%A9&empty="
    assert seen["args"] == [["empty", ""], ["x", "1"], ["x", "2"], ["y", "é"]]
    assert seen["headers"] == {"x-trace": "t-1", "x-forwarded-for": "203.0.113.9:51234"}
    assert seen["body"].encode("latin-1") == body
    assert seen["client"] == "203.0.113.9"
    assert seen["greeting"] == "hello"  # lifespan state reached the request


def test_response_status_binary_body_repeated_headers_and_cookies(worker: Worker) -> None:
    out = call(worker, "GET", "/cookies")
    assert out["status"] == 202
    assert out["body"] == b"\x00\xff binary"
    assert out["headers"]["content-type"] == "application/octet-stream"
    assert out["headers"]["x-multi"] == "one, two"
    assert sorted(c.split(";")[0] for c in out["cookies"]) == ["a=1", "b=2"]
    assert any("HttpOnly" in c for c in out["cookies"])
    assert "set-cookie" not in {k.lower() for k in out["headers"]}


def test_status_codes_and_errors(worker: Worker) -> None:
    assert call(worker, "GET", "/missing")["status"] == 404
    assert call(worker, "PUT", "/cookies")["status"] == 405
    out = call(worker, "GET", "/boom")
    assert out["status"] == 500 and out["body"] == b"Internal Server Error"


def test_base_path_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    app = make_app(tmp_path)
    app.http(echo_api())
    w = Worker(function_app(app, base_path="/api"))
    try:
        response = w.call("http", http_request("GET", BASE + "/api/echo/x?q=1"), Context())
        seen = json.loads(host_response(response)["body"])
        assert (seen["path"], seen["query"]) == ("/echo/x", "q=1")
    finally:
        w.close()


def test_a_wsgi_app_is_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    flask_app = Flask("demo")

    @flask_app.post("/items/<item>")
    def item(item: str) -> Any:
        return {"item": item, "q": request.args.get("q"), "json": request.get_json()}, 201

    app = make_app(tmp_path)
    app.http(flask_app)
    w = Worker(function_app(app))
    try:
        response = w.call(
            "http",
            http_request("POST", BASE + "/items/7?q=z", headers={"content-type": "application/json"}, body=b'{"a":1}'),
            Context(),
        )
        out = host_response(response)
        assert out["status"] == 201
        assert json.loads(out["body"]) == {"item": "7", "q": "z", "json": {"a": 1}}
    finally:
        w.close()


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that knows only HTTP (no lifespan), as many small apps do."""
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["raw_path"]})


def test_an_app_without_lifespan_is_served_but_azure_asgi_function_app_fails_it() -> None:
    loop = asyncio.new_event_loop()
    try:
        ours = AsgiHttpFunction(lambda: bare_app)
        response = loop.run_until_complete(ours(http_request("GET", BASE + "/a%2Fb"), Context()))
        assert host_response(response)["body"] == b"/a%2Fb"

        theirs = func.AsgiFunctionApp(bare_app, http_auth_level=func.AuthLevel.ANONYMOUS)
        fn = theirs.get_functions()[0].get_user_function()
        with pytest.raises(RuntimeError, match="startup failed"):
            loop.run_until_complete(fn(http_request("GET", BASE + "/a%2Fb"), Context()))
        # AsgiMiddleware alone serves it, but with the slash decoded in raw_path.
        plain = loop.run_until_complete(
            func.AsgiMiddleware(bare_app).handle_async(http_request("GET", BASE + "/a%2Fb"), Context())
        )
        assert host_response(plain)["body"] == b"/a/b"
    finally:
        loop.close()


def test_the_lifespan_starts_once_for_concurrent_first_requests() -> None:
    starts = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            starts.append(message["type"])
            await asyncio.sleep(0.01)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = AsgiHttpFunction(lambda: app, lifespan="on")
    loop = asyncio.new_event_loop()

    async def run() -> list[int]:
        responses = await asyncio.gather(*(adapter(http_request("GET", BASE + "/"), Context()) for _ in range(5)))
        await adapter.shutdown()
        return [r.status_code for r in responses]

    try:
        assert loop.run_until_complete(run()) == [204] * 5
    finally:
        loop.close()
    assert starts == ["lifespan.startup"]
