"""One set of delivery semantics, the same on every runtime.

Each runtime is driven through its public entry point, as its platform drives it:

* ``lambda``: ``lambda_handler(app)`` called with SQS and EventBridge events built from the
  recorded fixtures (``tests/fixtures/aws``); the reply is SQS's partial batch response, and
  SQS's redrive policy owns the dead letters;
* ``cloud_run`` / ``cloud_run_eventarc``: ``cloud_run_app(app)`` through an ASGI client, fed
  Pub/Sub pushes (or Eventarc's ``messagePublished`` CloudEvents) as Pub/Sub sends them, with
  the Pub/Sub emulator behind the app's queue, where the runtime moves dead letters;
* ``azure``: ``function_app(app)``'s queue trigger and timer functions called as the Functions
  worker calls them (azure-functions' own converters); the host owns the poison queue;
* ``dev``: the ``overcast dev`` workers (``DevWorkers``: the consumer loop and the scheduler)
  over an embedded SQLite queue, which redelivers and dead-letters by itself.

The app is the same everywhere: queue ``jobs`` whose handler ``work`` fails while a message's
delivery count is at most its ``fail``, with ``max_attempts=3``, and a schedule ``tick``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.dispatch import QUEUE_MESSAGE, Delivery

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aws"
# the Functions worker's converters (tests/providers/azure/azf_support.py), as the Azure tests use them
sys.path.insert(0, str(Path(__file__).parents[1] / "providers" / "azure"))
MAX_ATTEMPTS = 3
ALWAYS = 99  # a ``fail`` no delivery count reaches


class Scenario:
    """The app every runtime serves, and what its handlers saw."""

    def __init__(self) -> None:
        self.seen: list[CloudEvent] = []
        self.ticks: list[Any] = []
        self.tick_fails = False

    def declare(self, app: overcast.App) -> None:
        jobs = app.queue("jobs")

        @app.subscribe(jobs, max_attempts=MAX_ATTEMPTS)
        async def work(event: CloudEvent) -> None:
            self.seen.append(event)
            if event.extensions["attempts"] <= event.data.get("fail", 0):
                raise RuntimeError(f"job {event.data['n']} failed")

        @app.schedule("rate(1 hour)")
        async def tick(event: CloudEvent) -> None:
            self.ticks.append(event)
            if self.tick_fails:
                raise RuntimeError("tick failed")

    def calls(self, n: int) -> list[CloudEvent]:
        return [e for e in self.seen if e.data["n"] == n]


def job(n: int, fail: int = 0) -> dict[str, Any]:
    return {"n": n, "fail": fail}


class Runtime:
    """What a semantics test asks of a runtime; each answer comes from the platform's reply."""

    name = ""
    #: the platform, not Overcast, moves a message to its dead letters after max_attempts
    platform_dead_letters = False
    #: the platform counts deliveries and says so in each one (Eventarc's events do not)
    counts_deliveries = True
    #: what the error of an event nothing claims must say
    unrouted_says: tuple[str, ...] = ()

    def __init__(self, scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scenario = scenario
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.suffix = uuid.uuid4().hex[:8]

    def app(self, target: str, config: str) -> overcast.App:
        (self.tmp_path / "overcast.toml").write_text(config)
        self.monkeypatch.setenv("OVERCAST_TARGET", target)
        app = overcast.App(f"sem{self.suffix}", config=self.tmp_path / "overcast.toml")
        self.scenario.declare(app)
        return app

    def batch(self, bodies: list[dict[str, Any]]) -> list[bool]:
        """Deliver ``bodies`` as one batch, each on its first attempt: whether each was acknowledged."""
        raise NotImplementedError

    def attempts(self, body: dict[str, Any], limit: int) -> list[bool]:
        """Deliver one message as the platform does, again after each failure, until it is
        acknowledged or ``limit`` deliveries were made: the reply to each delivery."""
        raise NotImplementedError

    def dead_letters(self) -> list[Any] | None:
        """The bodies in the queue's dead letters (None where the platform owns them)."""
        return None

    def unrouted(self) -> str:
        """Deliver an event nothing claims: the error the runtime gives."""
        raise NotImplementedError

    def fire(self) -> bool:
        """Fire schedule ``tick`` as the platform's scheduler does: whether it reported success."""
        raise NotImplementedError

    def close(self) -> None:
        return None


# -- Lambda ------------------------------------------------------------------------------------


class Context:
    aws_request_id = "req-semantics"


class LambdaRuntime(Runtime):
    name = "lambda"
    platform_dead_letters = True  # the queue's redrive policy (maxReceiveCount) moves it
    unrouted_says = ("SNS topic", "routes=")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from overcast.providers.aws import lambda_handler

        app = self.app("aws", f'[targets.aws]\nqueue.jobs = "sqs://sem-jobs-{self.suffix}"\n')
        self.handler = lambda_handler(app)
        self.arn = f"arn:aws:sqs:us-east-1:123456789012:sem-jobs-{self.suffix}"
        self.template = _fixture("powertools-lambda-python/events/sqsEvent.json")["Records"][0]

    def _record(self, body: dict[str, Any], attempt: int) -> dict[str, Any]:
        record = copy.deepcopy(self.template)
        record["messageId"] = f"m-{body['n']}"
        record["eventSourceARN"] = self.arn
        record["body"] = json.dumps(body)
        record["messageAttributes"] = {}
        record["attributes"]["ApproximateReceiveCount"] = str(attempt)
        return record

    def _invoke(self, bodies: list[dict[str, Any]], attempt: int) -> list[bool]:
        reply = self.handler({"Records": [self._record(b, attempt) for b in bodies]}, Context())
        failed = {item["itemIdentifier"] for item in reply["batchItemFailures"]}
        return [f"m-{b['n']}" not in failed for b in bodies]

    def batch(self, bodies: list[dict[str, Any]]) -> list[bool]:
        return self._invoke(bodies, 1)

    def attempts(self, body: dict[str, Any], limit: int) -> list[bool]:
        replies: list[bool] = []
        # SQS delivers again after the visibility timeout, counting receives, up to the redrive's count
        for attempt in range(1, min(limit, MAX_ATTEMPTS) + 1):
            replies += self._invoke([body], attempt)
            if replies[-1]:
                break
        return replies

    def unrouted(self) -> str:
        from overcast.errors import ConfigError

        event = _fixture("aws-lambda-go/events/sns-event.json")
        event["Records"][0]["Sns"]["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:someone-elses"
        with pytest.raises(ConfigError) as caught:
            self.handler(event, Context())
        assert type(caught.value).__name__ == "UnroutedEvent"
        return str(caught.value)

    def fire(self) -> bool:
        event = _fixture("aws-sam-cli/rendered/cloudwatch/scheduled-event.json")
        event["resources"] = [f"arn:aws:events:us-east-1:123456789012:rule/sem{self.suffix}-tick"]
        try:
            reply = self.handler(event, Context())
        except RuntimeError:
            return False  # the invocation failed: EventBridge retries it, then its dead-letter target
        assert reply is None
        return True


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# -- Cloud Run ---------------------------------------------------------------------------------


class CloudRunRuntime(Runtime):
    name = "cloud_run"
    unrouted_says = ("no route", "routes=")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from overcast.providers.gcp import cloud_run_app

        self.monkeypatch.delenv("OVERCAST_GCP_PUSH_AUDIENCE", raising=False)
        self.monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # deliveries posted here carry no token
        self.topic = f"sem-jobs-{self.suffix}"
        self.project = os.environ["GOOGLE_CLOUD_PROJECT"]
        app = self.app("gcp", f'[targets.gcp]\nqueue.jobs = "pubsub://{self.topic}"\n')
        asyncio.run(app.provision())
        self.jobs = app.resources["jobs"]
        self.asgi = cloud_run_app(app)

    def _envelope(self, body: Any, message_id: str, attempt: int | None) -> dict[str, Any]:
        message = {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-01-02T03:04:05.678Z",
            "publish_time": "2026-01-02T03:04:05.678Z",
        }
        push: dict[str, Any] = {
            "message": message,
            "subscription": f"projects/{self.project}/subscriptions/{self.topic}-sub",
        }
        if attempt is not None:
            push["deliveryAttempt"] = attempt
        return push

    def _deliver(self, body: dict[str, Any], attempt: int) -> int:
        """One push to the queue's endpoint (routed by the path: RESOURCE); the HTTP status."""
        from asgi_support import call

        push = json.dumps(self._envelope(body, f"m-{body['n']}", attempt)).encode()
        return call(self.asgi, "POST", "/_overcast/pubsub/jobs", push, {"content-type": "application/json"})[0]

    def batch(self, bodies: list[dict[str, Any]]) -> list[bool]:
        # Pub/Sub pushes one message per request: a batch is its messages, each answered on its own
        return [200 <= self._deliver(b, 1) < 300 for b in bodies]

    def attempts(self, body: dict[str, Any], limit: int) -> list[bool]:
        replies: list[bool] = []
        for attempt in range(1, limit + 1):  # 2xx acknowledges; anything else, Pub/Sub pushes again
            status = self._deliver(body, attempt)
            assert status in (204, 500), status
            replies.append(status == 204)
            if replies[-1]:
                break
        return replies

    def dead_letters(self) -> list[Any] | None:
        dead = self.jobs.dead_letters()

        async def drain() -> list[Any]:
            for _ in range(20):
                got = await dead.receive(max_messages=10, wait=1)
                if got:
                    for message in got:
                        await dead.ack(message)
                    return [m.body for m in got]
            return []

        return asyncio.run(drain())

    def unrouted(self) -> str:
        from asgi_support import call

        push = self._envelope({"n": 0}, "m-x", 1)
        push["subscription"] = f"projects/{self.project}/subscriptions/someone-elses"
        status, text = call(
            self.asgi, "POST", "/_overcast/pubsub", json.dumps(push).encode(), {"content-type": "application/json"}
        )
        assert status == 404
        return text.decode()

    def fire(self) -> bool:
        from asgi_support import call

        status = call(self.asgi, "POST", "/_overcast/schedule/tick")[0]  # a Cloud Scheduler HTTP target
        assert status in (204, 500), status
        return status == 204


class EventarcRuntime(CloudRunRuntime):
    """Cloud Run fed by an Eventarc Pub/Sub trigger: binary-mode ``messagePublished`` CloudEvents
    for the queue's topic, which carry no delivery count."""

    name = "cloud_run_eventarc"
    counts_deliveries = False

    def _deliver(self, body: dict[str, Any], attempt: int) -> int:
        from asgi_support import call

        headers = {
            "ce-specversion": "1.0",
            "ce-id": f"m-{body['n']}",
            "ce-source": f"//pubsub.googleapis.com/projects/{self.project}/topics/{self.topic}",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
            "content-type": "application/json",
        }
        data = json.dumps(self._envelope(body, f"m-{body['n']}", None)).encode()
        return call(self.asgi, "POST", "/_overcast/events", data, headers)[0]

    def unrouted(self) -> str:
        from asgi_support import call

        headers = {
            "ce-specversion": "1.0",
            "ce-id": "e-1",
            "ce-source": "//storage.googleapis.com/projects/_/buckets/someone-elses",
            "ce-type": "google.cloud.storage.object.v1.finalized",
            "content-type": "application/json",
        }
        status, text = call(self.asgi, "POST", "/_overcast/events", b'{"bucket": "someone-elses"}', headers)
        assert status == 404
        return text.decode()


# -- Azure Functions ---------------------------------------------------------------------------


class AzureRuntime(Runtime):
    name = "azure"
    platform_dead_letters = True  # the host's maxDequeueCount (the subscription's max_attempts) moves it
    unrouted_says = ("Event Grid", "someone-elses")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from azf_support import Worker

        from overcast.providers.azure import function_app

        app = self.app("azure", '[targets.azure]\ndefaults.queue = "azqueue://{app}-{name}"\n')
        self.worker = Worker(function_app(app, event_grid={"uploads": "work"}))

    def _deliver(self, body: dict[str, Any], attempt: int) -> bool:
        from azf_support import Context, queue_message

        message = queue_message(json.dumps(body), id=f"m-{body['n']}", dequeue_count=attempt)
        try:
            self.worker.call("queue_jobs", message, Context("queue_jobs"))
        except RuntimeError:
            return False  # the host makes the message visible again, counting the dequeue
        return True

    def batch(self, bodies: list[dict[str, Any]]) -> list[bool]:
        # the host fetches a batch and runs one invocation per message
        return [self._deliver(b, 1) for b in bodies]

    def attempts(self, body: dict[str, Any], limit: int) -> list[bool]:
        replies: list[bool] = []
        for attempt in range(1, min(limit, MAX_ATTEMPTS) + 1):
            replies.append(self._deliver(body, attempt))
            if replies[-1]:
                break
        return replies

    def unrouted(self) -> str:
        from azf_support import Context, host_response, http_request

        request = http_request(
            "POST",
            "https://sem.azurewebsites.net/eventgrid/someone-elses?code=k",
            headers={"content-type": "application/json"},
            body=b"[]",
            route_params={"name": "someone-elses"},
        )
        reply = host_response(self.worker.call("eventgrid", request, Context("eventgrid")))
        assert reply["status"] == 404
        body = reply["body"]
        return body.decode() if isinstance(body, bytes) else str(body)

    def fire(self) -> bool:
        from azf_support import timer_request

        try:
            self.worker.call("schedule_tick", timer_request())
        except RuntimeError:
            return False  # the host records the invocation as failed
        return True

    def close(self) -> None:
        self.worker.close()


# -- overcast dev ------------------------------------------------------------------------------


class FakeClock:
    """The scheduler's clock: it moves only when the scheduler sleeps."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    async def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class DevRuntime(Runtime):
    name = "dev"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.overcast_app = self.app("local", '[targets.local]\ndefaults.queue = "sqlite:///queues/{name}.db"\n')
        self.jobs = self.overcast_app.resources["jobs"]
        self.loop = asyncio.new_event_loop()
        self.ids: dict[str, int] = {}

    def _run(self, bodies: list[dict[str, Any]], done: Callable[[list[Delivery]], bool]) -> list[Delivery]:
        """Send ``bodies``, run the dev workers until ``done(deliveries)``, stop them."""
        from overcast.providers.local.devserver import DevWorkers

        clock = FakeClock()
        deliveries: list[Delivery] = []
        finished = asyncio.Event()

        def record(delivery: Delivery) -> None:
            deliveries.append(delivery)
            if done(deliveries):
                finished.set()

        async def go() -> None:
            await self.jobs.create()
            for body in bodies:
                self.ids[await self.jobs.send(body)] = body["n"]
            workers = DevWorkers(
                self.overcast_app,
                on_delivery=record,
                wait=0.1,
                retry_delay=lambda attempt: 0.0,
                now=clock.now,
                sleep=clock.sleep,
            )
            await workers.start()
            try:
                await asyncio.wait_for(finished.wait(), timeout=20)
            finally:
                await workers.stop()

        self.loop.run_until_complete(go())
        return deliveries

    def _messages(self, deliveries: list[Delivery]) -> list[Delivery]:
        return [d for d in deliveries if d.event_id in self.ids]

    def batch(self, bodies: list[dict[str, Any]]) -> list[bool]:
        wanted = len(bodies)
        deliveries = self._run(bodies, lambda ds: len({d.event_id for d in self._messages(ds)}) >= wanted)
        first: dict[int, Delivery] = {}
        for delivery in self._messages(deliveries):
            first.setdefault(self.ids[delivery.event_id], delivery)
        return [first[b["n"]].outcome == "ok" for b in bodies]

    def attempts(self, body: dict[str, Any], limit: int) -> list[bool]:
        def settled(ds: list[Delivery]) -> bool:
            mine = self._messages(ds)
            return bool(mine) and (mine[-1].outcome in ("ok", "dead-letter") or len(mine) >= limit)

        return [d.outcome == "ok" for d in self._messages(self._run([body], settled))]

    def dead_letters(self) -> list[Any] | None:
        dead = self.jobs.dead_letters()

        async def drain() -> list[Any]:
            # the embedded queue sets a message aside on the receive after its last attempt: the
            # consumer's next poll, which the workers, stopped at the last delivery, may not have made
            assert await self.jobs.receive(max_messages=10, wait=0) == []
            got = await dead.receive(max_messages=10, wait=1)
            return [m.body for m in got]

        return self.loop.run_until_complete(drain())

    def fire(self) -> bool:
        deliveries = self._run([], lambda ds: any(d.handler == "tick" for d in ds))
        outcome = next(d for d in deliveries if d.handler == "tick").outcome
        assert outcome in ("ok", "failed")
        return outcome == "ok"

    def close(self) -> None:
        self.overcast_app.reset()
        self.loop.close()


# -- the runtimes --------------------------------------------------------------------------------


RUNTIMES: dict[str, type[Runtime]] = {
    r.name: r for r in (LambdaRuntime, CloudRunRuntime, EventarcRuntime, AzureRuntime, DevRuntime)
}
#: the dev server consumes only the app's own queues, so no event of its can be unrouted
ROUTING_RUNTIMES = [name for name in RUNTIMES if name != "dev"]
#: Eventarc's events carry no delivery count, so these tests need a platform that counts
COUNTING_RUNTIMES = [name for name, r in RUNTIMES.items() if r.counts_deliveries]


@pytest.fixture
def scenario() -> Scenario:
    return Scenario()


@pytest.fixture
def runtime(request: pytest.FixtureRequest, scenario: Scenario, tmp_path: Path) -> Iterator[Runtime]:
    name: str = request.param
    if name.startswith("cloud_run"):
        request.getfixturevalue("pubsub_emulator")  # its environment points the pubsub:// provider at it
    made = RUNTIMES[name](scenario, tmp_path, request.getfixturevalue("monkeypatch"))
    yield made
    made.close()


every = pytest.mark.parametrize("runtime", list(RUNTIMES), indirect=True)
counting = pytest.mark.parametrize("runtime", COUNTING_RUNTIMES, indirect=True)
routing = pytest.mark.parametrize("runtime", ROUTING_RUNTIMES, indirect=True)


@every
def test_a_handled_message_is_acknowledged_once(runtime: Runtime, scenario: Scenario) -> None:
    assert runtime.batch([job(1)]) == [True]
    [event] = scenario.seen
    assert (event.type, event.data) == (QUEUE_MESSAGE, job(1))
    assert event.extensions["attempts"] == 1
    assert event.source == f"overcast://sem{runtime.suffix}/queue/jobs"


@counting
def test_a_raising_handler_is_retried_by_the_platform(runtime: Runtime, scenario: Scenario) -> None:
    assert runtime.attempts(job(1, fail=1), MAX_ATTEMPTS) == [False, True]
    calls = scenario.calls(1)
    assert [e.extensions["attempts"] for e in calls] == [1, 2]
    assert calls[0].id == calls[1].id  # the same message, for an idempotent handler


@counting
def test_after_max_attempts_a_message_goes_to_the_dead_letters(runtime: Runtime, scenario: Scenario) -> None:
    replies = runtime.attempts(job(1, fail=ALWAYS), MAX_ATTEMPTS + 1)
    assert [e.extensions["attempts"] for e in scenario.calls(1)] == list(range(1, MAX_ATTEMPTS + 1))
    assert replies[:MAX_ATTEMPTS] == [False] * MAX_ATTEMPTS  # every attempt the handler failed was reported
    dead = runtime.dead_letters()
    if runtime.platform_dead_letters:
        assert dead is None and len(replies) == MAX_ATTEMPTS  # the platform moves it, counting attempts
    else:
        assert dead == [job(1, fail=ALWAYS)]
        # set aside, the message is acknowledged; Pub/Sub's push had to come once more for it
        assert replies[MAX_ATTEMPTS:] in ([], [True])


@every
def test_a_failure_in_a_batch_fails_only_its_message(runtime: Runtime, scenario: Scenario) -> None:
    assert runtime.batch([job(0), job(1, fail=1), job(2)]) == [True, False, True]
    assert [len(scenario.calls(n)) for n in (0, 2)] == [1, 1]


@every
def test_a_batch_reaches_the_handler_in_order(runtime: Runtime, scenario: Scenario) -> None:
    assert runtime.batch([job(n) for n in range(5)]) == [True] * 5
    assert [e.data["n"] for e in scenario.seen] == list(range(5))


@routing
def test_an_unrouted_event_is_a_clear_error(runtime: Runtime, scenario: Scenario) -> None:
    error = runtime.unrouted()
    for words in runtime.unrouted_says:
        assert words in error, error
    assert scenario.seen == []


@every
def test_a_schedule_firing_runs_its_job_and_a_failure_is_reported(runtime: Runtime, scenario: Scenario) -> None:
    assert runtime.fire() is True
    assert len(scenario.ticks) == 1
    scenario.tick_fails = True
    assert runtime.fire() is False
    assert len(scenario.ticks) == 2
    assert scenario.seen == []
