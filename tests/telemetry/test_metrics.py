"""Every provider operation records overcast.upstream.duration once, with its outcome."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.errors import Conflict

from .conftest import Recorded


def test_importing_telemetry_loads_no_cloud_sdk_and_no_opentelemetry() -> None:
    code = (
        "import sys, overcast.telemetry, overcast.telemetry.logs, overcast.telemetry.http\n"
        "heavy = {'boto3', 'botocore', 'google', 'azure', 'redis', 'psycopg', 'momento', 'grpc', 'opentelemetry'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_sync_and_async_calls_are_counted_once_each_with_outcomes(recorded: Recorded, tmp_path: Path) -> None:
    kv = overcast.open_kv(f"sqlite:///{tmp_path}/kv.db", name="users")
    version = kv.sync.put("a", {"n": 1})
    with pytest.raises(Conflict):
        kv.sync.put("a", {"n": 2}, if_version="stale")

    async def scenario() -> None:
        await kv.put("b", {"n": 1})
        await kv.get("a")
        await kv.get("missing")
        await kv.put("a", {"n": 3}, if_version=version)

    asyncio.run(scenario())
    assert recorded.upstream(upstream="sqlite", operation="put", resource="users", outcome="ok") == 3
    assert recorded.upstream(upstream="sqlite", operation="put", resource="users", outcome="conflict") == 1
    assert recorded.upstream(upstream="sqlite", operation="get", resource="users", outcome="ok") == 2
    durations = [p for p in recorded.points("overcast.upstream.duration") if p.attributes["operation"] == "put"]
    assert all(p.min >= 0 and p.max < 5 for p in durations)
    kv.close()


def test_a_call_through_an_app_handle_counts_once_under_the_resource_name(recorded: Recorded, tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text('[targets.local]\ndefaults.cache = "memory://{app}-{name}"\n')
    app = overcast.App(f"t{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    cache = app.cache("sessions")
    cache.sync.set("k", {"v": 1})
    asyncio.run(cache.get("k"))
    assert recorded.upstream(upstream="memory", operation="set", resource="sessions") == 1
    assert recorded.upstream(upstream="memory", operation="get", resource="sessions") == 1
    assert recorded.upstream(resource="sessions") == 2


def test_spans_name_the_upstream_and_operation(recorded: Recorded, tmp_path: Path) -> None:
    bucket = overcast.open_bucket(f"file://{tmp_path}/b", name="files")
    bucket.sync.put("x.txt", b"hello")
    names = [span.name for span in recorded.spans.get_finished_spans()]
    assert "files put" in names
    span = next(s for s in recorded.spans.get_finished_spans() if s.name == "files put")
    assert span.attributes["overcast.resource"] == "files"


def test_a_provider_opened_before_configure_is_timed_once_telemetry_is_on(tmp_path: Path) -> None:
    """Timing is a wrapper put where the resource is opened, not a patch of the provider's
    class: a store opened while telemetry is off is timed from the moment it is on."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from overcast import telemetry
    from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore

    kv = overcast.open_kv(f"sqlite:///{tmp_path}/kv.db", name="early")
    kv.sync.put("k", {"v": 1})
    reader = InMemoryMetricReader()
    telemetry.configure(metric_readers=[reader], span_processors=[], set_global=False)
    try:
        kv.sync.get("k")
        recorded = Recorded(reader, None)  # type: ignore[arg-type]
        assert recorded.upstream(resource="early", operation="get") == 1
        assert recorded.upstream(resource="early", operation="put") == 0
    finally:
        telemetry.shutdown()
    assert repr(kv).startswith("<SQLiteKeyValueStore 'early'")
    assert SQLiteKeyValueStore._get_blocking.__module__ == "overcast.providers.local.sqlite_kv"  # nothing patched


def test_a_provider_constructed_directly_is_not_timed(recorded: Recorded) -> None:
    from overcast.providers.local.memory import MemoryKeyValueStore

    store = MemoryKeyValueStore("memory://direct-" + uuid.uuid4().hex[:6], name="direct")
    store.sync.get("k")
    assert recorded.upstream(resource="direct") == 0
    overcast.open_kv(str(store.location), name="opened").sync.get("k")
    assert recorded.upstream(resource="opened", operation="get") == 1


def test_a_subscription_and_dead_letters_of_an_opened_resource_are_timed(recorded: Recorded) -> None:
    topic = overcast.open_topic("memory://t-" + uuid.uuid4().hex[:6], name="events")
    queue = topic.subscription("audit")
    topic.sync.publish({"n": 1})
    queue.sync.receive()
    queue.dead_letters().sync.depth()
    assert recorded.upstream(upstream="memory", operation="publish", resource="events") == 1
    assert recorded.upstream(upstream="memory", operation="receive") == 1
    assert recorded.upstream(upstream="memory", operation="depth") == 1


def test_off_times_nothing_and_a_request_listener_alone_times_calls() -> None:
    from overcast import telemetry
    from overcast.telemetry import _state

    assert not _state.ENABLED
    kv = overcast.open_kv("memory://off-" + uuid.uuid4().hex[:6], name="quiet")
    calls: list[tuple[str, str, str, str, float]] = []
    token = _state.request_calls.set(calls)
    try:
        kv.sync.put("a", {"n": 1})
        assert calls == []
        telemetry.summarize_requests(lambda summary: None)  # what overcast dev does: no OpenTelemetry
        try:
            kv.sync.get("a")
        finally:
            telemetry.summarize_requests(None)
        kv.sync.get("a")
    finally:
        _state.request_calls.reset(token)
    assert [(c[0], c[1], c[2], c[3]) for c in calls] == [("memory", "get", "quiet", "ok")]
    assert not _state.ENABLED


def test_counters_count_handler_invocations_and_errors(recorded: Recorded, tmp_path: Path) -> None:
    from overcast.runtime.dispatch import deliver

    (tmp_path / "overcast.toml").write_text('[targets.local]\ndefaults.queue = "memory://{app}-{name}"\n')
    app = overcast.App(f"c{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")

    @app.subscribe(jobs)
    def fail(event: overcast.CloudEvent) -> None:
        raise RuntimeError("no")

    async def scenario() -> None:
        await jobs.send({"n": 1})
        (message,) = await jobs.receive()
        await deliver(app.subscriptions[0], jobs, message, app=app.name)

    asyncio.run(scenario())
    invocations = recorded.points("overcast.invocations")
    errors = recorded.points("overcast.errors")
    assert sum(p.value for p in invocations if p.attributes["handler"] == "fail") == 1
    assert sum(p.value for p in errors if p.attributes["handler"] == "fail") == 1


def test_a_runtime_invocation_counts_the_cold_start_once_and_errors(recorded: Recorded) -> None:
    from overcast.telemetry import runtime
    from overcast.telemetry.logs import request_id

    runtime._cold["start"] = True
    with runtime.invocation(handler="api", request="r-1"):
        assert request_id.get() == "r-1"
    with pytest.raises(RuntimeError), runtime.invocation(handler="api", request="r-2"):
        raise RuntimeError("boom")
    assert request_id.get() is None
    assert not runtime.is_cold()

    def total(name: str) -> int:
        return sum(p.value for p in recorded.points(name) if p.attributes["handler"] == "api")

    assert (total("overcast.cold_starts"), total("overcast.invocations"), total("overcast.errors")) == (1, 2, 1)
    assert runtime.after_invocation(every=0) is True
    assert runtime.after_invocation(every=3600) is False


def test_the_backlog_of_watched_queues_is_a_gauge(recorded: Recorded, tmp_path: Path) -> None:
    from overcast import telemetry

    queue = overcast.open_queue(f"sqlite:///{tmp_path}/jobs.db", name="jobs")
    telemetry.watch_backlog(queue)
    for n in range(4):
        queue.sync.send({"n": n})
    queue.sync.receive()
    (point,) = [p for p in recorded.points("overcast.queue.backlog") if p.attributes["resource"] == "jobs"]
    assert point.value == 3


def test_spans_carry_the_semantic_conventions_of_their_service(recorded: Recorded) -> None:
    from overcast.errors import NotFound
    from overcast.telemetry._instrument import semantic_attributes
    from overcast.telemetry.wrappers import timed

    class _Located:
        def __init__(self, url: str, name: str) -> None:
            self.location = overcast.resources.url.ResourceURL.parse(url)  # type: ignore[attr-defined]
            self.name = name

    redis = semantic_attributes(_Located("redis://cache.internal:6379/0", "sessions"), "get")
    assert redis == {
        "db.system": "redis",
        "server.address": "cache.internal",
        "server.port": "6379",
        "db.operation.name": "get",
        "db.collection.name": "sessions",
    }
    sqs = semantic_attributes(_Located("sqs://jobs?endpoint=http://127.0.0.1:4566", "jobs"), "send")
    assert sqs == {
        "messaging.system": "aws_sqs",
        "messaging.operation.name": "send",
        "messaging.destination.name": "jobs",
        "server.address": "127.0.0.1",
        "server.port": "4566",
    }
    bucket = timed(overcast.open_bucket("memory://b-" + uuid.uuid4().hex[:6], name="pictures"))
    with pytest.raises(NotFound):
        bucket.sync.get("missing")
    (span,) = [s for s in recorded.spans.get_finished_spans() if s.name == "memory get"]
    assert span.attributes["error.type"] == "NotFound"
    assert span.attributes["overcast.outcome"] == "not_found"


def test_durations_nobody_collects_stay_bounded(recorded: Recorded) -> None:
    from overcast.telemetry import _instrument, _state

    kv = overcast.open_kv("memory://bounded-" + uuid.uuid4().hex[:6], name="bounded")
    for _ in range(_instrument.MAX_PENDING + 10):
        kv.sync.get("k")
    assert max(len(d) for d in _state.pending.values()) < _instrument.MAX_PENDING
    assert recorded.upstream(resource="bounded", operation="get") == _instrument.MAX_PENDING + 10


def test_collections_while_threads_record_lose_and_repeat_nothing(recorded: Recorded) -> None:
    import threading

    kv = overcast.open_kv("memory://racing-" + uuid.uuid4().hex[:6], name="racing")
    calls, threads = 3000, 4
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(calls):
            kv.sync.get("k")

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    collections = 0
    while any(worker.is_alive() for worker in workers):
        recorded.upstream(resource="racing")  # a collection: drains what is pending so far
        collections += 1
    for worker in workers:
        worker.join()
    assert collections > 1
    assert recorded.upstream(resource="racing", operation="get") == calls * threads
