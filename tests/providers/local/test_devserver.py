"""The dev server: consumers and schedulers next to the HTTP app, started by the ASGI lifespan.

The last test runs ``overcast dev`` as a real process and talks to it over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import overcast
from overcast.providers.local.devserver import DevASGI, DevWorkers, run_scheduler
from overcast.runtime.dispatch import Delivery
from overcast.runtime.schedule import parse_schedule

MEMORY_TOML = """
[app]
entry = "app:app"

[targets.local]
defaults.kv = "memory://{app}-{name}"
defaults.bucket = "memory://{app}-{name}"
defaults.queue = "memory://{app}-{name}"
defaults.topic = "memory://{app}-{name}"
defaults.cache = "memory://{app}-{name}"
defaults.secret = "memory://{app}"
"""


class FakeClock:
    """A clock that moves only when the scheduler sleeps."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.moment

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.moment += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class _Enough(Exception):
    pass


def _fire(expression: str, clock: FakeClock, count: int, *, fail: bool = False, max_sleep: float = 60.0) -> list[Any]:
    fired: list[Any] = []

    def handler(event: overcast.CloudEvent) -> None:
        if fail:
            raise RuntimeError("scheduled job failed")

    job = overcast.ScheduledJob("job", parse_schedule(expression), handler)

    def record(delivery: Delivery) -> None:
        fired.append((clock.now(), delivery.outcome, delivery.event_id))
        if len(fired) == count:
            raise _Enough

    async def go() -> None:
        await run_scheduler(job, app="clock", on_delivery=record, now=clock.now, sleep=clock.sleep, max_sleep=max_sleep)

    with pytest.raises(_Enough):
        asyncio.run(go())
    return fired


def test_rate_schedule_fires_every_interval_without_waiting() -> None:
    start = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    clock = FakeClock(start)
    fired = _fire("rate(1 minute)", clock, 3)
    assert [moment for moment, _, _ in fired] == [start + timedelta(minutes=n) for n in (1, 2, 3)]
    assert all(outcome == "ok" for _, outcome, _ in fired)
    assert fired[0][2].startswith("job:2026-03-01T12:01:30")


def test_cron_schedule_fires_at_its_times_sleeping_in_bounded_steps() -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    fired = _fire("cron(0 3 * * ? *)", clock, 2, max_sleep=600)
    assert [moment for moment, _, _ in fired] == [
        datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
    ]
    assert max(clock.sleeps) <= 600


def test_a_failing_job_keeps_its_schedule() -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    fired = _fire("rate(5 minutes)", clock, 2, fail=True)
    assert [outcome for _, outcome, _ in fired] == ["failed", "failed"]
    assert fired[1][0] - fired[0][0] == timedelta(minutes=5)


def test_missed_firings_after_a_clock_jump_are_skipped_not_caught_up() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    clock = FakeClock(start)
    jumped = False

    async def sleep(seconds: float) -> None:
        nonlocal jumped
        if not jumped:  # the laptop sleeps for a day during the first wait
            jumped = True
            clock.moment += timedelta(days=1)
        await clock.sleep(seconds)

    fired: list[datetime] = []
    job = overcast.ScheduledJob("job", parse_schedule("rate(1 hour)"), lambda: None)

    def record(delivery: Delivery) -> None:
        fired.append(clock.now())
        if len(fired) == 2:
            raise _Enough

    with pytest.raises(_Enough):
        asyncio.run(run_scheduler(job, app="clock", on_delivery=record, now=clock.now, sleep=sleep))
    assert fired[1] - fired[0] == timedelta(hours=1)


# -- workers and the lifespan -------------------------------------------------------------


def _app(tmp_path: Path) -> overcast.App:
    (tmp_path / "overcast.toml").write_text(MEMORY_TOML)
    return overcast.App(f"dev{uuid.uuid4().hex[:10]}", config=tmp_path / "overcast.toml")


async def _start(asgi: Any) -> tuple[asyncio.Queue[Any], asyncio.Queue[Any], asyncio.Task[None], dict[str, Any]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.create_task(
        asgi({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    return inbox, outbox, task, await outbox.get()


async def _stop(inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any], task: asyncio.Task[None]) -> dict[str, Any]:
    await inbox.put({"type": "lifespan.shutdown"})
    reply: dict[str, Any] = await outbox.get()
    await task
    return reply


def _starlette_app(log: list[str]) -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        log.append("inner startup")
        yield
        log.append("inner shutdown")

    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("hello"))], lifespan=lifespan)


def _flask_app() -> Any:
    from flask import Flask

    flask = Flask("devserver-test")
    flask.add_url_rule("/", "index", lambda: "hello")
    return flask


async def _no_lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("only http here")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.mark.parametrize("kind", ["starlette", "flask", "no-lifespan"])
def test_lifespan_starts_workers_and_passes_requests_through(tmp_path: Path, kind: str) -> None:
    app = _app(tmp_path)
    inner_log: list[str] = []
    app.http(
        {"starlette": lambda: _starlette_app(inner_log), "flask": _flask_app, "no-lifespan": lambda: _no_lifespan_app}[
            kind
        ]()
    )
    signups = app.topic("signups")
    done = app.bucket("done")
    deliveries: list[Delivery] = []

    @app.subscribe(signups)
    async def record(event: overcast.CloudEvent) -> None:
        await done.put(event.data["id"], b"ok")

    async def scenario() -> None:
        got = asyncio.Event()

        def on_delivery(delivery: Delivery) -> None:
            deliveries.append(delivery)
            got.set()

        asgi = DevASGI(app, DevWorkers(app, on_delivery=on_delivery, wait=0.05))
        inbox, outbox, task, started = await _start(asgi)
        assert started == {"type": "lifespan.startup.complete"}
        assert len(asgi.workers.tasks) == 1
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t") as client:
            response = await client.get("/")
            assert (response.status_code, response.text) == (200, "hello")
        await signups.publish({"id": "u1"})
        await asyncio.wait_for(got.wait(), 10)
        assert await done.get("u1") == b"ok"
        assert await _stop(inbox, outbox, task) == {"type": "lifespan.shutdown.complete"}
        assert asgi.workers.tasks == []

    asyncio.run(scenario())
    assert [(d.resource, d.handler, d.outcome, d.attempt) for d in deliveries] == [
        ("signups/record", "record", "ok", 1)
    ]
    if kind == "starlette":
        assert inner_log == ["inner startup", "inner shutdown"]


def test_inner_startup_failure_fails_the_lifespan_and_starts_nothing(tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database is down"})

    app.http(failing)
    app.subscribe(app.queue("jobs"), name="jobs")(lambda event: None)

    async def scenario() -> None:
        asgi = DevASGI(app, DevWorkers(app, on_delivery=lambda d: None))
        _, _, task, reply = await _start(asgi)
        await task
        assert reply == {"type": "lifespan.startup.failed", "message": "database is down"}
        assert asgi.workers.tasks == []

    asyncio.run(scenario())


# -- a real `overcast dev` process ----------------------------------------------------------

DEV_APP = """
import overcast
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

app = overcast.App({name!r})
signups = app.topic("signups")
welcome = app.bucket("welcome")


async def publish(request):
    return JSONResponse({{"id": await signups.publish(await request.json())}})


async def read(request):
    info = await welcome.head(request.path_params["key"])
    return JSONResponse({{"found": info is not None}})


async def dead(request):
    parked = await signups.subscription("refuse", max_attempts=2).dead_letters().receive(max_messages=10)
    return JSONResponse([{{"id": m.id, "body": m.body}} for m in parked])


app.http(Starlette(routes=[
    Route("/publish", publish, methods=["POST"]),
    Route("/welcome/{{key}}", read),
    Route("/dead", dead),
]))


@app.subscribe(signups)
async def greet(event: overcast.CloudEvent):
    await welcome.put(event.data["id"], ("welcome " + event.data["id"]).encode())


@app.subscribe(signups, max_attempts=2)
def refuse(event):
    raise RuntimeError("refused " + event.id)


@app.schedule("rate(1 minute)")
def tick():
    pass
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(params=["embedded", "memory"])
def dev_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """``overcast dev`` on the embedded defaults (SQLite, files) or on memory:// providers."""
    toml = MEMORY_TOML if request.param == "memory" else '[app]\nentry = "app:app"\n'
    (tmp_path / "overcast.toml").write_text(toml)
    (tmp_path / "app.py").write_text(textwrap.dedent(DEV_APP.format(name=f"dev{uuid.uuid4().hex[:8]}")))
    port = _free_port()
    out = tmp_path / "server.log"
    env = {**os.environ, "OVERCAST_DEV_RETRY_DELAY": "0.05", "PYTHONUNBUFFERED": "1"}
    env.pop("OVERCAST_TARGET", None)
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "overcast", "dev", str(tmp_path), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or b"Application startup failed" in out.read_bytes():
                raise AssertionError(f"overcast dev exited: {out.read_text()}")
            try:
                httpx.get(f"{base}/dead", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"overcast dev did not answer: {out.read_text()}") from None
                time.sleep(0.1)
        yield base, out
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _eventually(check: Any, what: str, log: Path) -> Any:
    deadline = time.monotonic() + 20
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen; server output:\n{log.read_text()}")
        time.sleep(0.05)


def test_overcast_dev_serves_delivers_retries_and_dead_letters(dev_server: tuple[str, Path]) -> None:
    base, log = dev_server
    published = httpx.post(f"{base}/publish", json={"id": "ada"}).json()["id"]

    _eventually(lambda: httpx.get(f"{base}/welcome/ada").json()["found"], "the welcome write", log)
    parked = _eventually(lambda: httpx.get(f"{base}/dead").json(), "dead-lettering", log)
    assert parked == [{"id": published, "body": {"id": "ada"}}]

    output = _eventually(lambda: "dead-letter" in log.read_text() and log.read_text(), "the printed deliveries", log)
    assert f"signups/greet → greet id {published} attempt 1 ok" in output
    assert f"signups/refuse → refuse id {published} attempt 1 retry" in output
    assert f"signups/refuse → refuse id {published} attempt 2 dead-letter" in output
    assert "RuntimeError: refused" in output
    assert "subscriber signups/greet" in output
    assert "schedule tick rate(1 minute), next at" in output


def test_an_app_of_handlers_only_runs_its_workers_and_answers_404(tmp_path: Path) -> None:
    app = _app(tmp_path)
    jobs = app.queue("jobs")
    handled: list[Any] = []

    @app.subscribe(jobs)
    def work(event: overcast.CloudEvent) -> None:
        handled.append(event.data)

    async def scenario() -> None:
        got = asyncio.Event()
        asgi = DevASGI(app, DevWorkers(app, on_delivery=lambda delivery: got.set(), wait=0.05))
        inbox, outbox, task, started = await _start(asgi)
        assert started == {"type": "lifespan.startup.complete"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t") as client:
            response = await client.get("/")
        assert response.status_code == 404 and "app.http(" in response.text
        await jobs.send({"n": 1})
        await asyncio.wait_for(got.wait(), 10)
        await _stop(inbox, outbox, task)

    asyncio.run(scenario())
    assert handled == [{"n": 1}]
