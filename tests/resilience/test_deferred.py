"""Deferred processing on real servers: a non-critical subscriber whose dependency is cut
parks its events and acknowledges them, and gets every one of them, once, when it answers again.

The dependency is a Redis server of its own (``SIGSTOP`` freezes it: calls time out, which
counts as the dependency being down); the app's queues and backlogs live on SQLite, Redis or
PostgreSQL, each a real server (or file) that stays up throughout.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import overcast
from metrics_support import total
from overcast.errors import InvalidArgument, Unavailable
from overcast.providers.local.devserver import DevWorkers
from overcast.resilience.breaker import breakers
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.deferral import (
    Receipt,
    backlog_name,
    subscription_deferral,
    subscription_replayer,
)
from overcast.runtime.dispatch import Delivery
from servers import Server
from servers.redis import start_redis

EVENTS_BEFORE, EVENTS_DURING, EVENTS_AFTER = 5, 20, 5
#: events each runtime's proof drives through an outage: a stream in CI, ten times as many with OVERCAST_LONG=1
STREAM = 400 if os.environ.get("OVERCAST_LONG", "").strip().lower() in ("1", "true", "yes") else 40
FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws"
COUNTED = ("parked", "replay_failures", "dead_letters", "replayed")


@pytest.fixture
def dependency() -> Iterator[Server]:
    """A Redis server the handler needs, to freeze and thaw; its own, so the queues stay up."""
    server = start_redis()
    yield server
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def freeze(server: Server, frozen: bool) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def dependency_url(server: Server) -> str:
    return f"redis://{server.address}/0?socket_timeout=0.3&socket_connect_timeout=0.3&retries=0"


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    yield
    for breaker in breakers().values():
        breaker.succeeded()


def queue_template(family: str, request: pytest.FixtureRequest) -> str:
    """``defaults.queue``/``defaults.topic`` for the family: every queue, backlogs included, on it."""
    if family == "sqlite":
        return ""  # the embedded defaults: a SQLite file per queue and topic under .overcast/
    if family == "redis":
        server = request.getfixturevalue("redis_server")
        return f"redis://{server.address}/0"
    server = request.getfixturevalue("postgres_server")
    return server.env["OVERCAST_TEST_POSTGRES_URL"]


class Recorder:
    """What the handler did: each event it completed (its dependency took the write)."""

    def __init__(self) -> None:
        self.completed: list[CloudEvent] = []
        self.deliveries: list[Delivery] = []

    def ids(self) -> list[str]:
        return [e.id for e in self.completed]


def make_app(tmp_path: Path, family: str, template: str, dep: Server, recorder: Recorder) -> overcast.App:
    suffix = uuid.uuid4().hex[:8]
    lines = ["[targets.local]", f'kv.mail = "{dependency_url(dep)}"']
    if template:
        lines += [f'defaults.queue = "{template}"', f'defaults.topic = "{template}"']
    (tmp_path / "overcast.toml").write_text("\n".join(lines) + "\n")
    app = overcast.App(f"defer{suffix}", config=tmp_path / "overcast.toml")
    signups = app.topic(f"signups{suffix}")
    mail = app.kv("mail")

    @app.subscribe(signups, critical=False)
    async def send_welcome(event: CloudEvent) -> None:
        await mail.put(event.id, {"n": event.data["n"]})
        recorder.completed.append(event)

    return app


def local_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> overcast.App:
    """An app on the embedded target: its queues and backlogs are SQLite files under tmp_path."""
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    return overcast.App(name, config=tmp_path / "overcast.toml")


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("family", ["sqlite", "redis", "postgres"])
def test_outage_of_a_non_critical_dependency_loses_nothing(
    family: str, tmp_path: Path, dependency: Server, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    recorder = Recorder()
    app = make_app(tmp_path, family, queue_template(family, request), dependency, recorder)
    topic = next(iter(app.resources.values()))
    asyncio.run(_outage(app, topic, dependency, recorder))


async def _outage(app: overcast.App, topic: Any, dep: Server, recorder: Recorder) -> None:
    workers = DevWorkers(app, on_delivery=recorder.deliveries.append, wait=0.2, retry_delay=lambda attempt: 0.2)
    sub = app.subscriptions[0]
    async with workers:
        published = [await topic.publish({"n": n}) for n in range(EVENTS_BEFORE)]
        await wait_for(lambda: len(recorder.completed) == EVENTS_BEFORE, 20, "the healthy deliveries")
        freeze(dep, True)
        published += [await topic.publish({"n": n}) for n in range(EVENTS_BEFORE, EVENTS_BEFORE + EVENTS_DURING)]
        deferred = lambda: [d for d in recorder.deliveries if d.outcome == "deferred"]  # noqa: E731
        await wait_for(lambda: len(deferred()) >= EVENTS_DURING, 60, "every delivery of the outage parked")
        backlog = subscription_deferral(sub, app.name).backlog
        assert len(recorder.completed) == EVENTS_BEFORE
        # the platform's attempts were not spent: nothing was given back or dead-lettered
        assert {d.outcome for d in recorder.deliveries} == {"ok", "deferred"}
        assert all(d.attempt == 1 for d in recorder.deliveries)
        assert any(d.cause is None for d in deferred()), "once the breaker opened, the handler is not even called"
        freeze(dep, False)
        total = EVENTS_BEFORE + EVENTS_DURING + EVENTS_AFTER
        published += [await topic.publish({"n": n}) for n in range(EVENTS_BEFORE + EVENTS_DURING, total)]
        await wait_for(lambda: len(recorder.completed) >= total, 60, "the backlog replayed")
        await wait_for(lambda: backlog.stats.replayed >= len(deferred()), 30, "every replay acknowledged")
        await asyncio.sleep(0.5)  # anything handled twice would show now
        assert backlog.stats.dead_lettered == 0
        assert not await backlog.queue.dead_letters().receive(max_messages=10)
        assert not await backlog.queue.receive(max_messages=10, wait=0.2)
    ids = recorder.ids()
    assert sorted(ids) == sorted(published), "every event handled exactly once, none lost"
    assert len(set(ids)) == len(ids)
    replayed = [e for e in recorder.completed if "replay" in e.extensions]
    assert len(replayed) == backlog.stats.replayed == len(deferred())
    order = [e.original["seq"] for e in replayed]
    assert order == sorted(order), "replayed in the order parked"
    data = sorted(e.data["n"] for e in replayed)
    assert data == sorted(e.data["n"] for e in recorder.completed if e.data["n"] in data)
    first = {e.id: e for e in recorder.completed}
    for event in replayed:  # the original CloudEvent: id, source, time, attempts
        assert event.source.startswith(f"overcast://{app.name}/topic/")
        assert event.extensions["attempts"] == 1 and event.time is not None
        assert event.id in published and first[event.id] is event


def test_critical_handlers_and_other_errors_keep_their_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a non-critical handler's dependency being down defers; a critical handler, or any
    other error, is given back for the platform (here the SQLite queue) to deliver again."""
    app = local_app(tmp_path, monkeypatch, "deferkinds")
    seen: dict[str, int] = {}

    def declare(name: str, critical: bool, error: Exception) -> None:
        @app.subscribe(app.queue(name), critical=critical, name=f"on_{name}")
        async def handler(event: CloudEvent) -> None:
            seen[name] = seen.get(name, 0) + 1
            raise error

    declare("crit", True, Unavailable("mail server down"))
    declare("bug", False, ValueError("bad template"))
    declare("down", False, Unavailable("mail server down"))
    declare("slow", False, TimeoutError())

    deliveries: list[Delivery] = []

    async def run() -> dict[str, set[str]]:
        outcomes: dict[str, set[str]] = {}

        def record(d: Delivery) -> None:
            deliveries.append(d)
            outcomes.setdefault(d.resource, set()).add(d.outcome)

        workers = DevWorkers(
            app,
            on_delivery=record,
            wait=0.1,
            retry_delay=lambda attempt: 0.05,
            visibility_timeout=0.3,  # a delivery left unacknowledged would come again at once
        )
        async with workers:
            for name in ("crit", "bug", "down", "slow"):
                await app.resources[name].send({"n": 1})
            await wait_for(lambda: {"crit", "bug", "down", "slow"} <= set(outcomes), 20, "every queue delivered")
            await wait_for(lambda: seen["crit"] > 1 and seen["bug"] > 1, 20, "the failed ones delivered again")
            await asyncio.sleep(0.8)  # past the visibility timeout: an unacknowledged one would be back
        return outcomes

    outcomes = asyncio.run(run())
    # parked and acknowledged: the queue never delivered them again (replays are not deliveries)
    assert [d.resource for d in deliveries].count("down") == 1
    assert [d.resource for d in deliveries].count("slow") == 1
    assert outcomes["crit"] >= {"retry"} and "deferred" not in outcomes["crit"]
    assert outcomes["bug"] >= {"retry"} and "deferred" not in outcomes["bug"]
    assert outcomes["down"] == {"deferred"} and outcomes["slow"] == {"deferred"}
    assert (tmp_path / ".overcast" / "queues" / f"{backlog_name('down')}.db").exists()


@pytest.mark.parametrize("family", ["sqlite", "sqs", "postgres"])
def test_a_rejected_item_goes_to_dead_letters_after_n_replays_and_redrive_brings_it_back(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric_reader: Any, request: pytest.FixtureRequest
) -> None:
    """On the embedded queues, on SQS (moto: the backlog's ``-dlq`` queue, the lease on
    DynamoDB) and on PostgreSQL."""
    app = local_app(tmp_path, monkeypatch, f"deferbad{uuid.uuid4().hex[:6]}")
    if family == "sqs":
        request.getfixturevalue("moto_server")
        monkeypatch.setenv("OVERCAST_TARGET", "aws")
        (tmp_path / "overcast.toml").write_text(f'[targets.aws]\ndefaults.queue = "sqs://{{name}}-{app.name}"\n')
        app.use_config(tmp_path / "overcast.toml")
    elif family == "postgres":
        base = request.getfixturevalue("postgres_server").env["OVERCAST_TEST_POSTGRES_URL"]
        (tmp_path / "overcast.toml").write_text(
            f'[targets.local]\ndefaults.queue = "{base}?queue={{name}}_{app.name}"\n'
            f'defaults.kv = "{base}?store={{name}}_{app.name}"\n'
        )
        app.use_config(tmp_path / "overcast.toml")
    jobs = app.queue("jobs")
    state = {"down": True, "reject": True, "replays": 0, "done": []}

    @app.subscribe(jobs, critical=False)
    async def work(event: CloudEvent) -> None:
        if state["down"]:
            raise Unavailable("the dependency is down")
        if state["reject"]:
            state["replays"] += 1
            raise ValueError(f"cannot handle {event.data}")
        state["done"].append(event.id)

    async def run() -> None:
        from overcast.resources.queue import Message

        sub = app.subscriptions[0]
        await jobs.create()
        message_id = await jobs.send({"n": 1})
        got = await jobs.receive(max_messages=1)
        from overcast.runtime.dispatch import deliver

        delivery = await deliver(sub, jobs, got[0], app=app.name)
        assert delivery.outcome == "deferred" and isinstance(delivery.cause, Unavailable)
        assert not await jobs.receive(max_messages=1, wait=0.2), "the original delivery was acknowledged"
        state["down"] = False
        subscription_deferral(sub, app.name).breaker.succeeded()
        replayer = subscription_replayer(sub, app=app.name, max_failures=3, wait=0.1, sleep=_no_wait)
        stats = await replayer.drain(timeout=20)
        assert state["replays"] == 3 and stats.dead_lettered == 1 and state["done"] == []
        dead = await replayer.backlog.peek(5, dead=True)
        assert isinstance(dead[0], Message) and [m.body["work"]["event"]["id"] for m in dead] == [message_id]
        assert dead[0].body["failures"] == 3
        assert await replayer.backlog.redrive() == 1
        state["reject"] = False
        await replayer.drain(timeout=20)
        assert state["done"] == [message_id]

    asyncio.run(run())
    counted = {name: total(metric_reader, f"overcast.deferred.{name}", backlog="jobs") for name in COUNTED}
    assert counted == {"parked": 1, "replay_failures": 3, "dead_letters": 1, "replayed": 1}


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def test_deferrable_calls_run_now_or_return_a_receipt_and_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = local_app(tmp_path, monkeypatch, "deferfn")
    state: dict[str, Any] = {"down": False, "sent": []}

    @app.deferrable
    async def send_mail(to: str, *, subject: str = "hi") -> str:
        if state["down"]:
            raise Unavailable("smtp down")
        state["sent"].append((to, subject))
        return f"sent to {to}"

    async def run() -> None:
        assert await send_mail("a@example.com") == "sent to a@example.com"
        with pytest.raises(InvalidArgument, match="argument 'subject' is not JSON-serializable"):
            await send_mail("b@example.com", subject=object())
        state["down"] = True
        receipt = await send_mail("c@example.com", subject="later")
        assert isinstance(receipt, Receipt) and receipt.backlog == "send_mail-deferred"
        assert "Unavailable" in receipt.reason
        state["down"] = False  # overcast dev's workers replay it once the breaker lets a probe through
        stats = send_mail.deferral.backlog.stats
        async with DevWorkers(app, on_delivery=lambda d: None, wait=0.1):
            await wait_for(lambda: stats.replayed == 1, 20, "the recorded call replayed and acknowledged")

    asyncio.run(run())
    assert state["sent"] == [("a@example.com", "hi"), ("c@example.com", "later")]


# -- Lambda: SQS records through lambda_handler, the backlog an SQS queue on moto ---------------


class LambdaContext:
    aws_request_id = "req-deferred"


def sqs_record(arn: str, n: int, attempt: int = 1) -> dict[str, Any]:
    template = json.loads((FIXTURES / "powertools-lambda-python/events/sqsEvent.json").read_text())["Records"][0]
    record = copy.deepcopy(template)
    record.update({"messageId": f"m-{n}", "eventSourceARN": arn, "body": json.dumps({"n": n}), "messageAttributes": {}})
    record["attributes"]["ApproximateReceiveCount"] = str(attempt)
    return dict(record)


def test_lambda_sqs_deliveries_are_parked_on_sqs_and_replayed(
    tmp_path: Path, dependency: Server, moto_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.providers.aws import lambda_handler

    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    (tmp_path / "overcast.toml").write_text(
        f'[targets.aws]\nqueue.jobs = "sqs://jobs-{suffix}"\ndefaults.queue = "sqs://{{name}}-{suffix}"\n'
        f'kv.mail = "{dependency_url(dependency)}"\n'
    )
    app = overcast.App(f"deferaws{suffix}", config=tmp_path / "overcast.toml")
    jobs, mail = app.queue("jobs"), app.kv("mail")
    completed: list[CloudEvent] = []

    @app.subscribe(jobs, critical=False)
    async def work(event: CloudEvent) -> None:
        await mail.put(event.id, event.data)
        completed.append(event)

    handler = lambda_handler(app)
    arn = f"arn:aws:sqs:us-east-1:123456789012:jobs-{suffix}"

    def deliver(numbers: range, attempt: int) -> None:
        for first in range(numbers.start, numbers.stop, 10):  # SQS's batches of ten
            records = [sqs_record(arn, n, attempt=attempt) for n in range(first, min(first + 10, numbers.stop))]
            reply = handler({"Records": records}, LambdaContext())
            assert reply == {"batchItemFailures": []}, "parked deliveries are acknowledged: SQS's attempts unspent"

    during, last = range(5, 5 + STREAM), 5 + STREAM + 5
    deliver(range(5), 1)
    freeze(dependency, True)
    deliver(during, 2)
    assert sorted(e.id for e in completed) == [f"m-{n}" for n in range(5)]
    sub = app.subscriptions[0]
    backlog = subscription_deferral(sub, app.name).backlog
    assert backlog.queue.location.host == f"jobs-deferred-{suffix}"
    freeze(dependency, False)
    deliver(range(during.stop, last), 1)  # right after: parked while the breaker is open, else handled
    tick = json.loads((FIXTURES / "aws-sam-cli/rendered/cloudwatch/scheduled-event.json").read_text())
    tick["resources"] = [f"arn:aws:events:us-east-1:123456789012:rule/{app.name}-overcast-replay"]
    # EventBridge fires the internal replay schedule, each firing within its budget, until drained
    drain_by(lambda: handler(tick, LambdaContext()), completed, last)
    replayed = stream_checked(backlog, completed, [f"m-{n}" for n in range(last)], [f"m-{n}" for n in during])
    assert all(e.data == {"n": int(e.id[2:])} for e in completed)
    assert all(e.extensions["attempts"] == 2 for e in replayed if int(e.id[2:]) in during)
    assert all(e.source == f"overcast://{app.name}/queue/jobs" for e in replayed)


def drain_by(fire: Any, completed: list[CloudEvent], expected: int, firings: int = 6) -> None:
    """Fire the replay schedule until every event was handled (a firing replays for its budget)."""
    for _ in range(firings):
        assert fire() in (None, 204)
        if len(completed) >= expected:
            return
    raise AssertionError(f"{len(completed)} of {expected} events handled after {firings} firings of the replay")


def stream_checked(backlog: Any, completed: list[CloudEvent], sent: list[str], outage: list[str]) -> list[CloudEvent]:
    """Every event handled exactly once per id, none lost, none dead-lettered, the backlog empty,
    each of the outage's replayed at its first replay; the replayed events. (These backlogs,
    SQS standard, Azure Storage and Pub/Sub queues, promise no order: it is proven on SQLite,
    Redis and PostgreSQL above.)"""
    ids = [e.id for e in completed]
    assert len(ids) == len(set(ids)), "each event handled once"
    assert sorted(ids) == sorted(sent), "none lost"
    replayed = [e for e in completed if "replay" in e.extensions]
    assert set(outage) <= {e.id for e in replayed}, "what came during the outage was parked, then replayed"
    assert all(e.extensions["replay"] == 1 for e in replayed), "no replay failed"
    assert backlog.stats.replayed == len(replayed) and backlog.stats.dead_lettered == 0
    assert asyncio.run(dead_letters(backlog)) == [], "nothing dead-lettered"
    assert asyncio.run(backlog.peek(5)) == [], "the backlog is empty"
    return replayed


async def dead_letters(backlog: Any) -> list[Any]:
    """The backlog's dead letters (none where nothing ever made its dead-letter queue)."""
    from overcast.errors import NotFound

    try:
        return await backlog.peek(5, dead=True)
    except NotFound:
        return []


def test_lambda_routed_s3_events_for_a_non_critical_subscription_are_parked(
    tmp_path: Path, dependency: Server, moto_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that is not a message of the app's own (an S3 notification) routed to a
    non-critical subscription: parked while the dependency is down, the invocation succeeds,
    and the replay hands the handler the same CloudEvent."""
    from overcast.providers.aws import lambda_handler

    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    (tmp_path / "overcast.toml").write_text(
        f'[targets.aws]\ndefaults.queue = "sqs://{{name}}-{suffix}"\nkv.mail = "{dependency_url(dependency)}"\n'
    )
    app = overcast.App(f"defers3{suffix}", config=tmp_path / "overcast.toml")
    uploads, mail = app.queue("uploads"), app.kv("mail")
    completed: list[CloudEvent] = []

    @app.subscribe(uploads, critical=False)
    async def tag_image(event: CloudEvent) -> None:
        await mail.put("last", {"id": event.id})
        completed.append(event)

    handler = lambda_handler(app, routes={"*": "tag_image"})
    event = json.loads((FIXTURES / "powertools-lambda-python/events/s3Event.json").read_text())
    freeze(dependency, True)
    assert handler(copy.deepcopy(event), LambdaContext()) is None  # not raised: Lambda does not retry it
    assert completed == []
    freeze(dependency, False)
    sub = app.subscriptions[0]
    stats = asyncio.run(subscription_replayer(sub, app=app.name, wait=0).drain(timeout=30))
    assert stats.replayed == len(event["Records"]) == len(completed)
    from overcast.providers.aws.lambda_events import s3_event

    first = s3_event(event["Records"][0])  # what the handler would have got at once
    got = completed[0]
    assert (got.id, got.type, got.source, got.subject, got.time, got.data) == (
        first.id,
        first.type,
        first.source,
        first.subject,
        first.time,
        first.data,
    )
    assert got.extensions == {**first.extensions, "replay": 1}


# -- kill -9 of the app in the middle of a replay ---------------------------------------------

KILL_APP = """
import os
import overcast
from overcast.errors import Unavailable

app = overcast.App("killreplay", config=os.path.join(os.path.dirname(__file__), "overcast.toml"))
jobs = app.queue("jobs")


@app.subscribe(jobs, critical=False)
async def work(event):
    if os.environ.get("DEPENDENCY_DOWN"):
        raise Unavailable("the dependency is down")
    with open(os.environ["SEEN"], "a") as seen:
        seen.write(event.id + "\\n")
"""

KILL_RUNNER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from killapp import app
from overcast.runtime.deferral import subscription_replayer

replayer = subscription_replayer(app.subscriptions[0], app=app.name, rate=25, wait=0.1, visibility=1.5)
asyncio.run(replayer.forever())
"""


def test_kill_9_in_the_middle_of_a_replay_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import subprocess
    import sys

    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    (tmp_path / "killapp.py").write_text(KILL_APP)
    (tmp_path / "runner.py").write_text(KILL_RUNNER)
    seen = tmp_path / "seen.txt"
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    monkeypatch.setenv("DEPENDENCY_DOWN", "1")
    spec = importlib.util.spec_from_file_location("killapp_parent", tmp_path / "killapp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    parked = asyncio.run(_park_all(app, 40))
    env = {**os.environ, "SEEN": str(seen), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("DEPENDENCY_DOWN")

    def replay() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(tmp_path / "runner.py"), str(tmp_path)], env=env)

    def lines() -> list[str]:
        return seen.read_text().split() if seen.exists() else []

    first = replay()
    try:
        _wait_sync(lambda: len(lines()) >= 10, 30, "the first replayer's progress")
    finally:
        first.kill()  # SIGKILL: no clean-up, an item may be in hand
        first.wait()
    assert len(lines()) < len(parked), "killed in the middle"
    second = replay()
    try:
        _wait_sync(lambda: set(lines()) >= set(parked), 60, "the second replayer to finish the backlog")
    finally:
        second.kill()
        second.wait()
    handled = lines()
    assert set(handled) == set(parked), "none lost"
    assert len(handled) - len(set(handled)) <= 1, "at most the item in hand when killed runs twice"


async def _park_all(app: overcast.App, count: int) -> list[str]:
    from overcast.runtime.dispatch import deliver

    jobs, sub = app.resources["jobs"], app.subscriptions[0]
    await jobs.create()
    ids = [await jobs.send({"n": n}) for n in range(count)]
    while got := await jobs.receive(max_messages=10):
        for message in got:
            assert (await deliver(sub, jobs, message, app=app.name)).outcome == "deferred"
    return ids


def _wait_sync(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_subscribers_depending_on_a_store_share_its_breaker_and_replay_after_a_ping(
    tmp_path: Path, dependency: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two subscribers ``depends_on=[mail]``: once the mail store's breaker opened, neither is
    called (both park at once); after the thaw a ``ping()`` of the store, not an item, is the probe."""
    app = local_app(tmp_path, monkeypatch, f"deferdeps{uuid.uuid4().hex[:6]}")
    (tmp_path / "overcast.toml").write_text(f'[targets.local]\nkv.mail = "{dependency_url(dependency)}"\n')
    app.use_config(tmp_path / "overcast.toml")
    signups, mail = app.topic("signups"), app.kv("mail")
    calls: dict[str, list[str]] = {"welcome": [], "newsletter": []}
    done: dict[str, list[str]] = {"welcome": [], "newsletter": []}

    def declare(name: str) -> None:
        @app.subscribe(signups, critical=False, depends_on=[mail], name=name)
        async def handler(event: CloudEvent) -> None:
            calls[name].append(event.id)
            await mail.put(f"{name}-{event.id}", {"n": event.data["n"]})
            done[name].append(event.id)

    declare("welcome")
    declare("newsletter")

    async def run() -> None:
        deliveries: list[Delivery] = []
        async with DevWorkers(app, on_delivery=deliveries.append, wait=0.2):
            freeze(dependency, True)
            first = await signups.publish({"n": 0})
            await wait_for(lambda: len(deliveries) == 2, 30, "both subscribers' first delivery")
            assert calls == {"welcome": [first], "newsletter": [first]}
            deferral = subscription_deferral(app.subscriptions[0], app.name)
            assert any(b.state != "closed" for b in deferral.dependency_breakers()), "the store's breaker opened"
            later = [await signups.publish({"n": n}) for n in range(1, 4)]
            await wait_for(lambda: len(deliveries) == 8, 30, "every delivery parked")
            assert all(d.outcome == "deferred" for d in deliveries)
            assert calls == {"welcome": [first], "newsletter": [first]}, "not called while the store is down"
            freeze(dependency, False)
            await wait_for(lambda: all(len(ids) == 4 for ids in done.values()), 30, "both backlogs replayed")
            for name in ("welcome", "newsletter"):
                assert done[name] == [first, *later], "in the order parked"
                assert calls[name] == [first, first, *later], "one failed call each: the probe was a ping"

    asyncio.run(run())


# -- Azure Functions' queue trigger (backlog on Azurite) and Cloud Run's push (Pub/Sub) --------

sys.path.insert(0, str(Path(__file__).parents[1] / "providers" / "azure"))  # azf_support: the worker's converters


def declare_jobs(app: overcast.App, completed: list[CloudEvent]) -> None:
    jobs, mail = app.queue("jobs"), app.kv("mail")

    @app.subscribe(jobs, critical=False, depends_on=[mail])
    async def work(event: CloudEvent) -> None:
        await mail.put(event.id, event.data)
        completed.append(event)


def test_azure_queue_trigger_parks_on_an_azurite_backlog(
    tmp_path: Path,
    dependency: Server,
    azurite: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azf_support import Context, Worker, queue_message, timer_request

    from overcast.providers.azure import function_app

    name = f"defaz{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    (tmp_path / "overcast.toml").write_text(
        f'[targets.azure]\ndefaults.queue = "azqueue://{{app}}-{{name}}"\nkv.mail = "{dependency_url(dependency)}"\n'
    )
    app = overcast.App(name, config=tmp_path / "overcast.toml")
    completed: list[CloudEvent] = []
    declare_jobs(app, completed)
    worker = Worker(function_app(app))

    def trigger(numbers: range) -> None:
        for n in numbers:  # the trigger returns: the host deletes the message, its dequeue count unspent
            message = queue_message(json.dumps({"n": n}), id=f"m-{n}")
            assert worker.call("queue_jobs", message, Context("queue_jobs")) is None

    during, last = range(5, 5 + STREAM), 5 + STREAM + 5
    backlog = subscription_deferral(app.subscriptions[0], app.name).backlog
    try:
        trigger(range(5))
        freeze(dependency, True)
        trigger(during)
        assert len(completed) == 5
        freeze(dependency, False)
        trigger(range(during.stop, last))
        # the internal replay schedule's timer, until drained
        drain_by(lambda: worker.call("schedule_overcast_replay", timer_request()), completed, last)
        stream_checked(backlog, completed, [f"m-{n}" for n in range(last)], [f"m-{n}" for n in during])
    finally:
        worker.close()
    assert all(e.data == {"n": int(e.id[2:])} for e in completed)


def test_cloud_run_push_parks_on_a_pubsub_backlog(
    tmp_path: Path,
    dependency: Server,
    pubsub_emulator: Server,
    firestore_emulator: Server,  # the replayers' leases: firestore://APPNAMEovercastbacklogs
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asgi_support import call
    from overcast.providers.gcp import cloud_run_app

    name = f"defgcp{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    monkeypatch.delenv("OVERCAST_GCP_PUSH_AUDIENCE", raising=False)
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # deliveries posted here carry no token
    (tmp_path / "overcast.toml").write_text(
        f'[targets.gcp]\nqueue.jobs = "pubsub://{name}-jobs"\ndefaults.queue = "pubsub://{{app}}-{{name}}"\n'
        f'kv.mail = "{dependency_url(dependency)}"\n'
    )
    app = overcast.App(name, config=tmp_path / "overcast.toml")
    completed: list[CloudEvent] = []
    declare_jobs(app, completed)
    asyncio.run(app.provision())
    asgi = cloud_run_app(app)
    project = os.environ["GOOGLE_CLOUD_PROJECT"]

    def push(n: int) -> int:
        message = {"data": base64.b64encode(json.dumps({"n": n}).encode()).decode(), "messageId": f"m-{n}"}
        body: dict[str, Any] = {"message": message, "subscription": f"projects/{project}/subscriptions/{name}-jobs-sub"}
        body["deliveryAttempt"] = 1
        headers = {"content-type": "application/json"}
        return int(call(asgi, "POST", "/_overcast/pubsub/jobs", json.dumps(body).encode(), headers)[0])

    during, last = range(5, 5 + STREAM), 5 + STREAM + 5
    assert {push(n) for n in range(5)} == {204}
    freeze(dependency, True)
    assert {push(n) for n in during} == {204}, "acknowledged: Pub/Sub does not push them again"
    assert len(completed) == 5
    freeze(dependency, False)
    assert {push(n) for n in range(during.stop, last)} == {204}
    # Cloud Scheduler fires the internal replay schedule, until drained
    drain_by(lambda: call(asgi, "POST", "/_overcast/schedule/overcast-replay")[0], completed, last)
    backlog = subscription_deferral(app.subscriptions[0], app.name).backlog
    stream_checked(backlog, completed, [f"m-{n}" for n in range(last)], [f"m-{n}" for n in during])
    assert all(e.data == {"n": int(e.id[2:])} for e in completed)


# -- the users example: the welcome is parked while its bucket is down ---------------------------


def test_users_example_parks_the_welcome_while_its_bucket_is_down(moto_server: Server) -> None:
    """examples/users with its bucket on S3 (moto) behind the chaos tests' TCP proxy: refused,
    the signup is still answered 201 and the welcome parked; passed again, it is written.
    (In a process of its own: see users_outage.py.)"""
    import subprocess

    env = {**os.environ, "AWS_MAX_ATTEMPTS": "1", "OVERCAST_TARGET": "local", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("users_outage.py"))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "signup 201",  # the critical path is unaffected
        "outcomes deferred",  # parked, the delivery acknowledged
        "welcome Welcome, Ada Lovelace! Your account ada is ready.",  # written once the bucket answered
    ]


# -- two replayers of one backlog take turns through its lease -------------------------------


def test_two_replayers_of_one_backlog_keep_its_order_through_the_lease(
    tmp_path: Path, redis_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replayers (as two processes would: each its own holder) on one Redis backlog, the
    lease on the same Redis: one replays while the other waits, and when the holder stops the
    other takes over where it left off; every item once, in the order parked."""
    base = redis_server.env["OVERCAST_TEST_REDIS_URL"]
    run = uuid.uuid4().hex[:8]
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    (tmp_path / "overcast.toml").write_text(
        f'[targets.local]\ndefaults.queue = "{base}?prefix=lease-{{name}}-{run}"\n'
        f'defaults.kv = "{base}?prefix=lease-{{name}}-{run}"\n'
    )
    app = overcast.App(f"lease{run}", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")
    state: dict[str, Any] = {"down": True, "done": []}

    @app.subscribe(jobs, critical=False)
    async def work(event: CloudEvent) -> None:
        if state["down"]:
            raise Unavailable("down")
        await asyncio.sleep(0.002)  # long enough for the other replayer to step in, were it let
        state["done"].append(event.data["n"])

    async def main() -> None:
        from overcast.runtime.dispatch import deliver

        sub = app.subscriptions[0]
        await jobs.create()
        for n in range(40):
            await jobs.send({"n": n})
        while got := await jobs.receive(max_messages=10):
            for message in got:
                assert (await deliver(sub, jobs, message, app=app.name)).outcome == "deferred"
        state["down"] = False
        subscription_deferral(sub, app.name).breaker.succeeded()
        replayers = [subscription_replayer(sub, app=app.name, rate=1000, wait=0.05, visibility=5) for _ in range(2)]
        assert all(r.lease is not None for r in replayers) and replayers[0].lease.holder != replayers[1].lease.holder
        tasks = [asyncio.create_task(r.forever()) for r in replayers]
        await wait_for(lambda: len(state["done"]) >= 15, 30, "the first holder's progress")
        holders = [r for r in replayers if r.lease is not None and r.lease._version is not None]
        assert len(holders) == 1, "one replayer holds the lease"
        tasks[replayers.index(holders[0])].cancel()  # the holder stops: it releases the lease
        await wait_for(lambda: len(state["done"]) >= 40, 30, "the other replayer to take over")
        await asyncio.sleep(0.3)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    done = state["done"]
    # the item the stopped holder was running comes again (given back unacknowledged): at most
    # that one twice, at once, and nothing out of order
    assert [n for i, n in enumerate(done) if i == 0 or done[i - 1] != n] == list(range(40)), done
    assert len(done) - 40 <= 1, done


# -- failed replays are counted in the item: a new process does not reset them ------------------

REJECT_APP = """
import os
import overcast
from overcast.errors import Unavailable

app = overcast.App("rejects", config=os.path.join(os.path.dirname(__file__), "overcast.toml"))
jobs = app.queue("jobs")


@app.subscribe(jobs, critical=False)
async def work(event):
    if os.environ.get("DEPENDENCY_DOWN"):
        raise Unavailable("the dependency is down")
    raise ValueError("this payload is refused")
"""

REJECT_RUNNER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from rejectapp import app
from overcast.runtime.deferral import subscription_replayer

async def main():
    replayer = subscription_replayer(app.subscriptions[0], app=app.name, max_failures=5, wait=0.1)
    stats = await replayer.drain(timeout=int(sys.argv[2]))
    print(stats.replay_failures, stats.dead_lettered)

asyncio.run(main())
"""


def test_failed_replays_are_counted_across_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two failed replays in one process, then a process of its own: it dead-letters the item
    after the three failures left of five, not five more."""
    import importlib.util
    import subprocess

    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    (tmp_path / "rejectapp.py").write_text(REJECT_APP)
    (tmp_path / "runner.py").write_text(REJECT_RUNNER)
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    monkeypatch.setenv("DEPENDENCY_DOWN", "1")
    spec = importlib.util.spec_from_file_location("rejectapp_parent", tmp_path / "rejectapp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    (parked,) = asyncio.run(_park_all(app, 1))
    monkeypatch.delenv("DEPENDENCY_DOWN")
    sub = app.subscriptions[0]
    subscription_deferral(sub, app.name).breaker.succeeded()

    async def two_failures() -> None:
        replayer = subscription_replayer(sub, app=app.name, max_failures=5, wait=0.1)
        task = asyncio.create_task(replayer.forever())
        await wait_for(lambda: replayer.backlog.stats.replay_failures >= 2, 20, "two failed replays")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert replayer.backlog.stats.replay_failures == 2 and replayer.backlog.stats.dead_lettered == 0

    asyncio.run(two_failures())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path), "20"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "1"], "three more failures, then the dead letters"
    backlog = subscription_deferral(sub, app.name).backlog
    dead = asyncio.run(backlog.peek(5, dead=True))
    assert [m.body["work"]["event"]["id"] for m in dead] == [parked] and dead[0].body["failures"] == 5
