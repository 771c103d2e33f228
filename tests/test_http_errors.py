"""Overcast's errors answered as HTTP problems by a real Starlette and FastAPI app."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Route

from asgi_support import call
from overcast import errors
from overcast.http_errors import exception_handlers, install, problem, status_of

CASES = [
    (errors.InvalidArgument("users: key must not be empty", resource="users"), 422, "users: key must not be empty"),
    (errors.NotFound("users: no table t-users", resource="users"), 404, "users: no table t-users"),
    (errors.Conflict("users: 'ada' exists", resource="users"), 409, "users: 'ada' exists"),
    (errors.Throttled("users: DynamoDB ProvisionedThroughputExceeded on t-users", resource="users"), 429, None),
    (errors.Unavailable("users: cannot reach http://10.0.0.7:8000", resource="users"), 503, None),
    (errors.ConfigError("kv 'users': no URL on target 'aws'"), 500, None),
    (errors.PermissionDenied("users: AccessDenied for arn:aws:iam::1:role/x", resource="users"), 500, None),
]


def _raising(exc: Exception) -> Starlette:
    async def endpoint(request: object) -> None:
        raise exc

    return Starlette(routes=[Route("/", endpoint)], exception_handlers=exception_handlers())


@pytest.mark.parametrize(("exc", "status", "detail"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_each_error_is_its_status_with_a_problem_document(
    exc: Exception, status: int, detail: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="overcast.http"):
        got, body = call(_raising(exc), "GET", "/")
    assert got == status == status_of(exc)
    document = json.loads(body)
    assert document["status"] == status and document["type"] == "about:blank"
    if detail is not None:
        assert document["detail"] == detail and document["resource"] == "users"
    else:  # 5xx and 429: the client learns which resource, never the provider's message
        assert str(exc).split(": ", 1)[1] not in document["detail"]
    if status == 500:
        assert "Traceback" not in body.decode()
        assert any(record.exc_info and record.exc_info[1] is exc for record in caplog.records)


def test_retry_after_on_throttled_and_unavailable() -> None:
    for exc in (errors.Throttled("x", resource="r"), errors.Unavailable("x", resource="r")):
        _, headers, body = problem(exc, retry_after=7)
        assert headers["retry-after"] == "7"
        assert body["detail"].startswith("'r' is ")


def test_install_on_fastapi_answers_errors_its_routes_raise() -> None:
    api = FastAPI()

    @api.get("/items/{key}")
    async def read(key: str) -> dict[str, str]:
        raise errors.NotFound(f"items: no item {key!r}", resource="items")

    install(api)
    status, body = call(api, "GET", "/items/x")
    assert status == 404 and json.loads(body)["detail"] == "items: no item 'x'"


def test_install_refuses_what_is_not_a_starlette_app() -> None:
    with pytest.raises(errors.ConfigError, match="problem"):
        install(object())
