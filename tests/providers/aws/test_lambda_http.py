"""HTTP on Lambda: every API Gateway, ALB and function URL fixture through lambda_handler,
each response compared with Mangum's for the same app and event.

The differences we intend (listed in docs/clouds/aws_lambda.md) are applied to Mangum's
answer by ``_intended`` before comparing; anything else that differs fails the test.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mangum import Mangum
from starlette.applications import Starlette

import overcast
from overcast.providers.aws import lambda_handler
from overcast.providers.aws.lambda_http import adapter_for

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aws"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _http_fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.json") if adapter_for(_load(p)) is not None)


HTTP_FIXTURES = _http_fixtures()


class Context:
    aws_request_id = "req-1234"
    function_name = "users"


def _echo_app() -> FastAPI:
    api = FastAPI()

    @api.get("/bytes")
    async def binary() -> Response:
        return Response(bytes(range(256)), media_type="image/png")

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(path: str, request: Request) -> JSONResponse:
        body = await request.body()
        names = sorted({k for k in request.headers})
        reply = JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": sorted(request.query_params.multi_items()),
                "headers": {k: ", ".join(request.headers.getlist(k)) for k in names if k != "cookie"},
                "cookies": request.cookies,
                "body": base64.b64encode(body).decode(),
                "scheme": request.url.scheme,
            }
        )
        reply.set_cookie("a", "1")
        reply.set_cookie("b", "2")
        reply.headers.append("x-multi", "one")
        reply.headers.append("x-multi", "two")
        return reply

    return api


def _pair(api: Any) -> tuple[Any, Any]:
    app = overcast.App("lambda-test")
    app.http(api)
    return lambda_handler(app, lifespan="off"), Mangum(api, lifespan="off")


def _as_mangum_sees_it(event: dict[str, Any]) -> dict[str, Any]:
    """The event with our intended request differences undone, for Mangum's run."""
    event = copy.deepcopy(event)
    if event.get("version") == "2.0" and event.get("rawPath"):
        # We route on rawPath (the path as requested); Mangum on requestContext.http.path,
        # which API Gateway normalises (a trailing slash dropped).
        event["requestContext"]["http"]["path"] = event["rawPath"]
    return event


def _comparable(reply: dict[str, Any]) -> dict[str, Any]:
    reply = dict(reply)
    # ALB: we add statusDescription, which ALB's response format documents.
    reply.pop("statusDescription", None)
    return reply


@pytest.mark.parametrize("path", HTTP_FIXTURES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_http_fixture_answers_as_mangum_does(path: Path) -> None:
    handler, mangum = _pair(_echo_app())
    event = _load(path)
    ours = handler(copy.deepcopy(event), Context())
    try:
        theirs = mangum(_as_mangum_sees_it(event), Context())
    except binascii.Error:
        # Bodies marked base64 that are not: Mangum raises (API Gateway answers 502), we answer 400.
        assert ours["statusCode"] == 400
        return
    assert _comparable(ours) == _comparable(theirs)
    assert ours["statusCode"] == 200
    if "elb" in event["requestContext"]:
        assert ours["statusDescription"] == "200 OK"


def test_the_server_is_the_host_header_else_the_api_domain() -> None:
    handler = lambda_handler(_app_of(_server_app()), lifespan="off")
    with_host = _event(V2)
    assert json.loads(handler(with_host, Context())["body"]) == [with_host["headers"]["host"], 443]
    no_host = _event("aws-lambda-go/events/lambda-urls-request.json")
    assert json.loads(handler(no_host, Context())["body"]) == [no_host["requestContext"]["domainName"], 443]


def _server_app() -> Any:
    async def server(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps(scope["server"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return server


def test_the_fixtures_cover_every_http_source() -> None:
    names = {adapter_for(_load(p)).name for p in HTTP_FIXTURES}  # type: ignore[union-attr]
    assert names == {"apigateway-rest", "apigateway-http", "function-url", "alb"}
    assert len(HTTP_FIXTURES) >= 35


def _event(name: str) -> dict[str, Any]:
    return _load(FIXTURES / name)


V1 = "aws-lambda-go/events/apigw-request.json"
V2 = "aws-lambda-go/events/apigw-v2-request-no-authorizer.json"
URL = "aws-lambda-go/events/lambda-urls-request.json"
ALB_SINGLE = "aws-lambda-go/events/alb-lambda-target-request-headers-only.json"
ALB_MULTI = "aws-lambda-go/events/alb-lambda-target-request-multivalue-headers.json"


def _at(event: dict[str, Any], path: str, method: str = "GET") -> dict[str, Any]:
    event = copy.deepcopy(event)
    if event.get("version") == "2.0":
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
    else:
        event["path"] = path
        event["httpMethod"] = method
    return event


@pytest.mark.parametrize("name", [V1, V2, URL, ALB_SINGLE, ALB_MULTI])
def test_binary_responses_are_base64_as_each_source_expects(name: str) -> None:
    handler, mangum = _pair(_echo_app())
    event = _at(_event(name), "/bytes")
    ours = handler(event, Context())
    assert ours["isBase64Encoded"] is True
    assert base64.b64decode(ours["body"]) == bytes(range(256))
    theirs = mangum(copy.deepcopy(event), Context())
    assert theirs["body"] == ours["body"]


@pytest.mark.parametrize("name", [V1, V2, URL, ALB_SINGLE, ALB_MULTI])
def test_base64_request_bodies_are_decoded(name: str) -> None:
    handler, _ = _pair(_echo_app())
    event = _at(_event(name), "/upload", "POST")
    payload = bytes(range(200, 256)) + b"\x00end"
    event["body"] = base64.b64encode(payload).decode()
    event["isBase64Encoded"] = True
    reply = handler(event, Context())
    assert base64.b64decode(json.loads(reply["body"])["body"]) == payload


def test_cookies_and_repeated_headers_per_source() -> None:
    handler, _ = _pair(_echo_app())
    v2 = handler(_at(_event(V2), "/x"), Context())
    assert v2["cookies"] == ["a=1; Path=/; SameSite=lax", "b=2; Path=/; SameSite=lax"]
    assert v2["headers"]["x-multi"] == "one,two"
    assert "set-cookie" not in v2["headers"]

    v1 = handler(_at(_event(V1), "/x"), Context())
    assert v1["multiValueHeaders"]["set-cookie"] == ["a=1; Path=/; SameSite=lax", "b=2; Path=/; SameSite=lax"]
    assert v1["multiValueHeaders"]["x-multi"] == ["one", "two"]

    multi = handler(_at(_event(ALB_MULTI), "/x"), Context())
    assert multi["multiValueHeaders"]["set-cookie"] == ["a=1; Path=/; SameSite=lax", "b=2; Path=/; SameSite=lax"]
    assert "headers" not in multi

    single = handler(_at(_event(ALB_SINGLE), "/x"), Context())
    cookies = [v for k, v in single["headers"].items() if k.lower() == "set-cookie"]
    assert sorted(cookies) == ["a=1; Path=/; SameSite=lax", "b=2; Path=/; SameSite=lax"]
    assert single["statusDescription"] == "200 OK"


def test_request_cookies_and_multi_value_query_strings_reach_the_app() -> None:
    handler, _ = _pair(_echo_app())
    v2 = _at(_event(V2), "/x")
    v2["cookies"] = ["s=1", "t=2"]
    v2["rawQueryString"] = "a=1&a=2&b=x%20y"
    body = json.loads(handler(v2, Context())["body"])
    assert body["cookies"] == {"s": "1", "t": "2"}
    assert body["query"] == [["a", "1"], ["a", "2"], ["b", "x y"]]

    v1 = _at(_event(V1), "/x")
    v1["multiValueHeaders"]["Cookie"] = ["s=1", "t=2"]
    v1["multiValueQueryStringParameters"] = {"a": ["1", "2"], "b": ["x y"]}
    body = json.loads(handler(v1, Context())["body"])
    assert body["cookies"] == {"s": "1", "t": "2"}
    assert body["query"] == [["a", "1"], ["a", "2"], ["b", "x y"]]

    alb = _at(_event(ALB_MULTI), "/x")
    alb["multiValueQueryStringParameters"] = {"a": ["1", "2"], "b": ["x%20y"]}
    body = json.loads(handler(alb, Context())["body"])
    assert body["query"] == [["a", "1"], ["a", "2"], ["b", "x y"]]


def test_an_unhandled_error_is_a_bare_500_logged_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("secret detail: db password is hunter2")

    app = overcast.App("lambda-test")
    app.http(broken)
    handler = lambda_handler(app, lifespan="off")
    with caplog.at_level(logging.ERROR, logger="overcast.aws.lambda"):
        reply = handler(_at(_event(V2), "/boom"), Context())
    assert reply["statusCode"] == 500
    assert reply["body"] == "Internal Server Error"
    assert "hunter2" not in json.dumps(reply)
    [record] = [r for r in caplog.records if r.name == "overcast.aws.lambda"]
    assert "req-1234" in record.getMessage()
    assert record.exc_info is not None


def test_a_framework_error_page_is_passed_on_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    api = FastAPI()

    @api.get("/boom")
    async def boom() -> None:
        raise RuntimeError("hunter2")

    handler, mangum = _pair(api)
    with caplog.at_level(logging.ERROR, logger="overcast.aws.lambda"):
        reply = handler(_at(_event(V1), "/boom"), Context())
    assert reply["statusCode"] == 500
    assert "hunter2" not in json.dumps(reply)
    assert any("req-1234" in r.getMessage() for r in caplog.records if r.name == "overcast.aws.lambda")
    assert reply == mangum(_at(_event(V1), "/boom"), Context())


def test_the_lifespan_starts_once_and_its_state_reaches_requests() -> None:
    from contextlib import asynccontextmanager

    started: list[int] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        started.append(1)
        yield {"db": "opened"}
        started.append(2)

    api = FastAPI(lifespan=lifespan)

    @api.get("/state")
    async def state(request: Request) -> dict[str, str]:
        return {"db": request.state.db}

    app = overcast.App("lambda-test")
    app.http(api)
    handler = lambda_handler(app)
    for _ in range(3):
        reply = handler(_at(_event(V2), "/state"), Context())
        assert json.loads(reply["body"]) == {"db": "opened"}
    assert started == [1]
    handler.close()  # at exit: the lifespan's shutdown runs
    assert started == [1, 2]


def test_a_wsgi_app_is_served_too() -> None:
    from flask import Flask

    flask = Flask("t")

    @flask.get("/hi")
    def hi() -> dict[str, str]:
        return {"hello": "wsgi"}

    app = overcast.App("lambda-test")
    app.http(flask)
    reply = lambda_handler(app)(_at(_event(V1), "/hi"), Context())
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"]) == {"hello": "wsgi"}


def test_base_path_is_stripped() -> None:
    handler = lambda_handler(_app_of(_echo_app()), base_path="/v1", lifespan="off")
    reply = handler(_at(_event(V2), "/v1/users"), Context())
    assert json.loads(reply["body"])["path"] == "/users"


def _app_of(api: Any) -> overcast.App:
    app = overcast.App("lambda-test")
    app.http(api)
    return app


def test_authorizer_and_websocket_events_are_not_taken_for_requests() -> None:
    auth: dict[str, Any] = {"type": "REQUEST", "methodArn": "arn", "httpMethod": "GET"}
    auth["requestContext"] = {"resourcePath": "/"}
    assert adapter_for(auth) is None
    ws = {"httpMethod": "GET", "requestContext": {"connectionId": "abc", "eventType": "MESSAGE"}}
    assert adapter_for(ws) is None


def test_the_request_id_is_set_for_the_app_s_logs() -> None:
    from overcast.telemetry.logs import request_id

    seen: list[Any] = []

    async def app_(scope: Any, receive: Any, send: Any) -> None:
        seen.append(request_id.get())
        assert scope["aws.context"] is context and scope["aws.event"]["rawPath"] == "/"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = lambda_handler(_app_of(app_), lifespan="off")
    context = Context()
    reply = handler(_at(_event(V2), "/"), context)
    assert reply == {"statusCode": 204, "headers": {}, "body": "", "isBase64Encoded": False}
    assert seen == ["req-1234"]
    assert request_id.get() is None


def test_the_handler_imports_no_aws_sdk_for_an_app_that_needs_none() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import overcast\n"
        "from overcast.providers.aws import lambda_handler\n"
        "async def ok(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
        "app = overcast.App('plain')\n"
        "app.http(ok)\n"
        "event = {'version': '2.0', 'rawPath': '/', 'headers': {}, 'requestContext': {'http': {'method': 'GET'}}}\n"
        "assert lambda_handler(app)(event, None)['statusCode'] == 200\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'cloudevents')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _headers_app() -> Any:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps([[k.decode(), v.decode()] for k, v in scope["headers"]]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return echo


def test_v1_headers_come_from_the_multi_value_map_and_the_single_map_still_counts() -> None:
    """REST v1 sends both maps: the scope's headers are the multi-value ones, a header only the
    single map holds is added, and a value of the wrong type in either map is a 400."""
    handler = lambda_handler(_app_of(_headers_app()), lifespan="off")
    event = _event(V1)
    event["multiValueHeaders"]["X-Twice"] = ["1", None, "2"]
    event["headers"]["X-Twice"] = "2"
    seen = json.loads(handler(copy.deepcopy(event), Context())["body"])
    assert ["x-twice", "1"] in seen and ["x-twice", "2"] in seen and ["host", event["headers"]["Host"]] in seen
    assert len(seen) == len(event["multiValueHeaders"]) + 1
    event["headers"]["X-Only-Single"] = "here"
    seen = json.loads(handler(copy.deepcopy(event), Context())["body"])
    assert ["x-only-single", "here"] in seen and len(seen) == len(event["multiValueHeaders"]) + 2
    for where, value in (("headers", 7), ("multiValueHeaders", [7]), ("multiValueHeaders", "text")):
        broken = copy.deepcopy(event)
        broken[where]["Accept"] = value
        assert handler(broken, Context())["statusCode"] == 400, (where, value)


def test_the_header_name_and_host_caches_stay_bounded() -> None:
    """Header names (lower-cased) and each Host's checked ``server`` are kept between requests,
    but not without limit: a client sending new ones with every request cannot grow the
    process, and a Host that is no host is refused however often it comes."""
    from overcast.providers.aws import lambda_http

    handler = lambda_handler(_app_of(_headers_app()), lifespan="off")
    servers = lambda_handler(_app_of(_server_app()), lifespan="off")
    for n in range(max(lambda_http._MAX_NAMES, lambda_http._MAX_SERVERS) + 50):
        event = _event(V2)
        event["headers"][f"X-Name-{n}"] = "v"
        event["headers"]["host"] = f"h{n}.example.com:8{n % 10}"
        seen = json.loads(handler(copy.deepcopy(event), Context())["body"])
        assert [f"x-name-{n}", "v"] in seen
        assert json.loads(servers(event, Context())["body"]) == [f"h{n}.example.com", 80 + n % 10]
    assert len(lambda_http._NAMES) <= lambda_http._MAX_NAMES
    assert len(lambda_http._SERVERS) <= lambda_http._MAX_SERVERS
    for _ in range(2):
        event = _event(V2)
        event["headers"]["host"] = "a/b"
        assert servers(event, Context())["statusCode"] == 400


def test_a_request_runs_what_it_queued_and_what_it_awaits_in_its_invocation() -> None:
    """The warm path stops the loop after one pass only when nothing else was queued: a
    callback or task the app started runs before the reply, as with run_until_complete."""
    import asyncio

    seen: list[str] = []

    async def background() -> None:
        seen.append("task")

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        loop = asyncio.get_running_loop()
        if scope["path"] == "/queue":
            loop.call_soon(seen.append, "callback")
            seen.append(f"started {id(loop.create_task(background())) > 0}")
        elif scope["path"] == "/sleep":
            await asyncio.sleep(0.01)
        elif scope["path"] == "/fail":
            raise KeyboardInterrupt
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    app = overcast.App("lambda-one-pass")
    app.http(asgi)
    handler = lambda_handler(app, lifespan="off")
    event = _load(FIXTURES / "aws-lambda-go/events/apigw-request.json")
    for path in ("/queue", "/sleep", "/plain"):
        event["path"] = path
        assert handler(copy.deepcopy(event), None)["body"] == path
        if path == "/queue":
            assert seen == ["started True", "callback", "task"]
    event["path"] = "/fail"
    with pytest.raises(KeyboardInterrupt):
        handler(copy.deepcopy(event), None)
    event["path"] = "/plain"  # the loop is not left with a stop queued
    assert handler(copy.deepcopy(event), None)["body"] == "/plain"
    assert handler.loop.run_until_complete(asyncio.sleep(0, "after")) == "after"
