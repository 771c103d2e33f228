"""The one ASGI lifespan (overcast.runtime.lifespan), through every runtime that drives one:
Lambda's ``lambda_handler``, Azure Functions' HTTP function and the dev server's wrapped app.
The cases are the ASGI spec's and Mangum's: an app that does not speak the protocol, startup
and shutdown failures, and a shutdown that ends when the app says so."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.runtime.lifespan import Lifespan, LifespanFailure

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws"
V2 = FIXTURES / "aws-lambda-go/events/apigw-v2-request-no-authorizer.json"

Asgi = Callable[..., Any]


async def _hello(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def app_answering(startup: list[dict[str, Any]] | None, shutdown: list[dict[str, Any]] | None = None) -> Asgi:
    """A raw ASGI app whose lifespan sends these messages (None: returns without a word)."""
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _hello(send)
            return
        seen.append((await receive())["type"])
        for message in startup or []:
            await send(message)
        if startup is None:
            return
        seen.append((await receive())["type"])
        for message in shutdown or [{"type": "lifespan.shutdown.complete"}]:
            await send(message)
        try:
            await asyncio.Event().wait()  # lingers after its reply: shutdown must not wait for it
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    app.seen = seen  # type: ignore[attr-defined]
    return app


async def raising_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("this app knows only http")
    await _hello(send)


class Context:
    aws_request_id = "req-lifespan"
    function_name = "lifespan"


class LambdaRuntime:
    name = "lambda"

    def __init__(self, asgi: Asgi, mode: str) -> None:
        from overcast.providers.aws import lambda_handler

        app = overcast.App("lifespan-test")
        app.http(asgi)
        self.handler = lambda_handler(app, lifespan=mode)  # type: ignore[arg-type]

    def request(self) -> int:
        event = json.loads(V2.read_text())
        status: int = self.handler(event, Context())["statusCode"]
        return status

    def close(self) -> None:
        self.handler.close()


class AzureRuntime:
    name = "azure"

    def __init__(self, asgi: Asgi, mode: str) -> None:
        from overcast.providers.azure.functions_http import AsgiHttpFunction

        self.function = AsgiHttpFunction(lambda: asgi, lifespan=mode)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()

    def request(self) -> int:
        from providers.azure.azf_support import http_request

        response = self.loop.run_until_complete(self.function(http_request("GET", "https://h/api/x")))
        return int(response.status_code)

    def close(self) -> None:
        self.loop.run_until_complete(self.function.shutdown())
        self.loop.close()


RUNTIMES = [LambdaRuntime, AzureRuntime]


@pytest.fixture(params=RUNTIMES, ids=lambda r: r.name)
def runtime(request: pytest.FixtureRequest) -> type:
    runtime: type = request.param
    return runtime


@pytest.mark.parametrize(
    "answer",
    [[{"type": "http.response.start", "status": 200}], None],
    ids=["answers-with-http.response.start", "returns-without-answer"],
)
def test_an_app_without_lifespan_support_fails_on_and_is_served_under_auto(runtime: type, answer: Any) -> None:
    strict = runtime(app_answering(answer), "on")
    with pytest.raises(LifespanFailure, match='does not support the ASGI lifespan, and lifespan="on" requires it'):
        strict.request()
    lenient = runtime(app_answering(answer), "auto")
    assert lenient.request() == 200 and lenient.request() == 200
    lenient.close()


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_startup_failed_raises_with_the_apps_message(runtime: type, mode: str) -> None:
    served = runtime(app_answering([{"type": "lifespan.startup.failed", "message": "database unreachable"}]), mode)
    with pytest.raises(LifespanFailure, match="the app failed to start: database unreachable"):
        served.request()


def test_shutdown_failed_is_logged_with_its_message(runtime: type, caplog: pytest.LogCaptureFixture) -> None:
    app = app_answering(
        [{"type": "lifespan.startup.complete"}], [{"type": "lifespan.shutdown.failed", "message": "flush lost"}]
    )
    served = runtime(app, "auto")
    assert served.request() == 200
    with caplog.at_level(logging.ERROR, logger="overcast.lifespan"):
        served.close()
    assert any("failed to shut down: flush lost" in r.getMessage() for r in caplog.records)


def test_shutdown_ends_at_the_apps_reply_not_its_return(runtime: type, caplog: pytest.LogCaptureFixture) -> None:
    app = app_answering([{"type": "lifespan.startup.complete"}])
    served = runtime(app, "on")
    assert served.request() == 200
    with caplog.at_level(logging.ERROR, logger="overcast.lifespan"):
        served.close()
    assert app.seen == ["lifespan.startup", "lifespan.shutdown", "cancelled"]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "did not answer" in r.getMessage()]


def test_a_startup_exception_is_logged_at_info_under_auto_and_error_under_on(
    runtime: type, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="overcast.lifespan"):
        assert runtime(raising_app, "auto").request() == 200
    (record,) = [r for r in caplog.records if r.name == "overcast.lifespan"]
    assert record.levelno == logging.INFO and "appears unsupported" in record.getMessage()
    assert "this app knows only http" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="overcast.lifespan"), pytest.raises(LifespanFailure):
        runtime(raising_app, "on").request()
    assert [r.levelno for r in caplog.records if r.name == "overcast.lifespan"] == [logging.ERROR]


# -- the dev server: uvicorn drives its lifespan, which drives the app's ------------------------


async def _dev_lifespan(asgi: Asgi, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from overcast.providers.local.devserver import DevASGI

    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App("lifespan-dev", config=tmp_path)
    app.http(asgi)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.create_task(DevASGI(app)({"type": "lifespan", "state": {}}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        await task
        return started, None
    await inbox.put({"type": "lifespan.shutdown"})
    stopped = await outbox.get()
    await task
    return started, stopped


def test_the_dev_server_reports_the_apps_startup_failure_to_uvicorn(tmp_path: Path) -> None:
    app = app_answering([{"type": "lifespan.startup.failed", "message": "no database"}])
    started, _ = asyncio.run(_dev_lifespan(app, tmp_path))
    assert started == {"type": "lifespan.startup.failed", "message": "no database"}


@pytest.mark.parametrize("asgi", [app_answering([{"type": "http.response.start", "status": 200}]), raising_app])
def test_the_dev_server_serves_an_app_without_lifespan(tmp_path: Path, asgi: Asgi) -> None:
    started, stopped = asyncio.run(_dev_lifespan(asgi, tmp_path))
    assert started["type"] == "lifespan.startup.complete" and stopped == {"type": "lifespan.shutdown.complete"}


def test_the_dev_server_logs_a_shutdown_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = app_answering([{"type": "lifespan.startup.complete"}], [{"type": "lifespan.shutdown.failed", "message": "x"}])
    with caplog.at_level(logging.ERROR, logger="overcast.lifespan"):
        started, stopped = asyncio.run(_dev_lifespan(app, tmp_path))
    assert started["type"] == "lifespan.startup.complete" and stopped == {"type": "lifespan.shutdown.complete"}
    assert any("failed to shut down: x" in r.getMessage() for r in caplog.records)


def test_the_lifespan_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="'on' or 'auto'"):
        Lifespan(raising_app, mode="sometimes")  # type: ignore[arg-type]
