"""The App: declarations, bad input caught before anything is written, schedules, access."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

import overcast
from overcast.errors import ConfigError, InvalidArgument
from overcast.runtime.schedule import parse_schedule


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> overcast.App:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    monkeypatch.delenv("OVERCAST_CONFIG", raising=False)
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    return overcast.App("demo", config=tmp_path)


def test_two_resources_with_one_name(app: overcast.App) -> None:
    app.kv("users")
    with pytest.raises(ConfigError) as caught:
        app.bucket("users")
    message = str(caught.value)
    assert "'users'" in message and "kv" in message and "bucket" in message
    with pytest.raises(ConfigError, match="two resources"):
        app.kv("users")


@pytest.mark.parametrize("name", ["", "1users", "users/all", "a" * 64, "with space"])
def test_bad_resource_names(app: overcast.App, name: str) -> None:
    with pytest.raises(ConfigError):
        app.kv(name)


def test_value_not_json_serializable_writes_nothing(app: overcast.App) -> None:
    users = app.kv("users")
    with pytest.raises(InvalidArgument) as caught:
        users.sync.put("u1", {"joined": datetime.now(UTC)})
    message = str(caught.value)
    assert "users" in message and "'u1'" in message and "JSON" in message
    with pytest.raises(InvalidArgument, match="JSON"):
        users.sync.put("u1", {"x": float("nan")})
    with pytest.raises(InvalidArgument, match="dict"):
        users.sync.put("u1", ["not", "a", "document"])  # type: ignore[arg-type]
    assert users.sync.get("u1") is None


def test_key_past_the_limit_names_resource_and_limit(app: overcast.App) -> None:
    users = app.kv("users")
    limit = users.limits.max_key_bytes
    key = "k" * (limit + 1)
    with pytest.raises(InvalidArgument) as caught:
        users.sync.put(key, {"a": 1})
    message = str(caught.value)
    assert "users" in message and f"limit is {limit} bytes" in message
    users.sync.put("k" * limit, {"a": 1})  # exactly at the limit is fine
    assert [item.key for item in users.sync.scan()] == ["k" * limit]


def test_value_past_the_limit_writes_nothing(app: overcast.App) -> None:
    async def main() -> None:
        users = app.kv("users")
        limit = users.limits.max_value_bytes
        await users.put("big", {"v": "old"})
        with pytest.raises(InvalidArgument) as caught:
            await users.put("big", {"v": "x" * limit})
        message = str(caught.value)
        assert "users" in message and "'big'" in message and f"the limit is {limit} bytes" in message
        with pytest.raises(InvalidArgument):
            await users.put_many({"small": {"v": 1}, "huge": {"v": "x" * limit}})
        item = await users.get("big")
        assert item is not None and item.value == {"v": "old"}
        assert await users.get("small") is None

    anyio.run(main)


def test_blob_key_past_the_limit(app: overcast.App) -> None:
    files = app.bucket("files")
    with pytest.raises(InvalidArgument, match=r"files.*limit is 1024 bytes"):
        files.sync.put("f" * 1025, b"data")
    assert list(files.sync.list()) == []


@pytest.mark.parametrize(
    "expression",
    [
        "rate(0 minutes)",
        "rate(5 minute)",
        "rate(1 hours)",
        "rate(5 weeks)",
        "rate(five minutes)",
        "every 5 minutes",
        "cron(0 3 * * *)",
        "cron(0 3 * * * *)",
        "cron(0 3 ? * ? *)",
        "cron(0 3 * * ? 20x6)",
        "cron(61 3 * * ? *)",
        "cron(0 3 ? * 8 *)",
        "cron(0 3 ? * 0 *)",
    ],
)
def test_schedule_that_does_not_parse(app: overcast.App, expression: str) -> None:
    with pytest.raises(ConfigError) as caught:
        app.schedule(expression)
    assert repr(expression) in str(caught.value)
    assert app.schedules == []


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 3 * * ? *)", datetime(2026, 3, 10, 3, 0, tzinfo=UTC), datetime(2026, 3, 11, 3, 0, tzinfo=UTC)),
        ("cron(0 3 * * ? *)", datetime(2026, 3, 10, 2, 59, tzinfo=UTC), datetime(2026, 3, 10, 3, 0, tzinfo=UTC)),
        # 2026-11-20 is a Friday: the next weekday quarter-hour is Monday 00:00.
        (
            "cron(0/15 * ? * MON-FRI *)",
            datetime(2026, 11, 20, 23, 50, tzinfo=UTC),
            datetime(2026, 11, 23, 0, 0, tzinfo=UTC),
        ),
        (
            "cron(0/15 * ? * MON-FRI *)",
            datetime(2026, 11, 23, 10, 1, tzinfo=UTC),
            datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
        ),
        # Day 2 counts from Sunday = 1: Monday. 2026-11-22 is a Sunday.
        ("cron(0 12 ? * 2 *)", datetime(2026, 11, 22, 13, 0, tzinfo=UTC), datetime(2026, 11, 23, 12, 0, tzinfo=UTC)),
        # Day 1 is Sunday, day 7 is Saturday.
        ("cron(0 12 ? * 1 *)", datetime(2026, 11, 23, 0, 0, tzinfo=UTC), datetime(2026, 11, 29, 12, 0, tzinfo=UTC)),
        ("cron(0 12 ? * 7 *)", datetime(2026, 11, 23, 0, 0, tzinfo=UTC), datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
        ("cron(0 12 ? * 2,6 *)", datetime(2026, 11, 24, 0, 0, tzinfo=UTC), datetime(2026, 11, 27, 12, 0, tzinfo=UTC)),
        ("cron(30 9 1 * ? *)", datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2030)", datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2030, 1, 1, 0, 0, tzinfo=UTC)),
        ("rate(5 minutes)", datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 11, 22, 0, 5, tzinfo=UTC)),
        ("rate(1 day)", datetime(2026, 11, 22, 0, 0, tzinfo=UTC), datetime(2026, 11, 23, 0, 0, tzinfo=UTC)),
    ],
)
def test_schedule_next_after(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(after) == expected


def test_schedule_declares_a_job(app: overcast.App) -> None:
    @app.schedule("cron(0 3 * * ? *)")
    async def nightly() -> None: ...

    (job,) = app.schedules
    assert job.name == "nightly" and job.handler is nightly
    with pytest.raises(ConfigError, match="two schedules"):
        app.schedule("rate(1 hour)", name="nightly")(nightly)


def test_allow_read_refuses_a_write(app: overcast.App) -> None:
    users = app.kv("users", allow=("read",))
    assert users.sync.get("u1") is None
    with pytest.raises(ConfigError) as caught:
        users.sync.put("u1", {"a": 1})
    message = str(caught.value)
    assert "kv 'users'" in message and "'write'" in message
    assert users.used == {"read"}
    other = app.kv("other")
    other.sync.put("u1", {"a": 1})
    assert other.sync.get("u1") is not None


def test_handles_record_what_the_code_uses(app: overcast.App) -> None:
    users, files, events, sessions = app.kv("users"), app.bucket("files"), app.topic("events"), app.cache("sessions")
    assert users.used == files.used == events.used == sessions.used == set()

    async def main() -> None:
        await users.get("a")
        await files.put("f.txt", b"x")
        await events.publish({"a": 1})

    anyio.run(main)
    assert users.used == {"read"}
    assert files.used == {"write"}
    assert events.used == {"write"}
    assert sessions.used == set()
    users.sync.put("a", {"a": 1})
    assert users.used == {"read", "write"}


def test_subscribe_takes_a_handle_of_this_app(app: overcast.App) -> None:
    other = overcast.App("other")
    foreign = other.topic("events")
    with pytest.raises(ConfigError, match="declared on this app"):
        app.subscribe(foreign)
    events = app.topic("events")

    @app.subscribe(events, critical=False)
    async def on_event(event: overcast.CloudEvent) -> None: ...

    (sub,) = app.subscriptions
    assert sub.name == "on_event" and sub.critical is False and sub.source is events
    with pytest.raises(ConfigError, match="already has a subscription"):
        app.subscribe(events)(on_event)


def test_http_takes_one_app(app: overcast.App) -> None:
    with pytest.raises(ConfigError, match="no HTTP app"):
        _ = app.asgi
    with pytest.raises(ConfigError, match="ASGI or WSGI"):
        app.http("not an app")

    async def asgi(scope: object, receive: object, send: object) -> None: ...

    app.http(asgi)
    assert app.asgi.app is asgi  # as given, behind only the health route (/_overcast/health)
    with pytest.raises(ConfigError, match="already"):
        app.http(asgi)


def test_provision_creates_every_resource(app: overcast.App, tmp_path: Path) -> None:
    app.kv("users")
    app.bucket("files")
    events = app.topic("events")

    @app.subscribe(events)
    def on_event(event: overcast.CloudEvent) -> None: ...

    done = anyio.run(app.provision)
    assert [(kind, name) for kind, name, _ in done] == [
        ("kv", "users"),
        ("bucket", "files"),
        ("topic", "events"),
        ("subscription", "events/on_event"),
    ]
    assert (tmp_path / ".overcast" / "kv" / "users.db").exists()
    assert anyio.run(app.provision) == done


def test_target_switch_reopens_resources(app: overcast.App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = f"memory://users-{uuid.uuid4().hex}"
    (tmp_path / "overcast.toml").write_text(f'[targets.local]\n[targets.mem]\nkv.users = "{memory}"\n')
    app.use_config(tmp_path)
    users = app.kv("users")
    users.sync.put("u1", {"where": "sqlite"})
    monkeypatch.setenv("OVERCAST_TARGET", "mem")
    app.reset()
    assert users.resolved_url().scheme == "memory"
    assert users.sync.get("u1") is None
    monkeypatch.delenv("OVERCAST_TARGET")
    app.reset()
    item = users.sync.get("u1")
    assert item is not None and item.value == {"where": "sqlite"}


def test_a_queue_subscribers_max_attempts_becomes_the_queues_limit(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text('[targets.local]\ndefaults.queue = "memory://{app}-{name}"\n')
    app = overcast.App(f"q{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")

    @app.subscribe(jobs, max_attempts=2)
    def work(event: overcast.CloudEvent) -> None:
        raise RuntimeError("always")

    assert jobs.resolved_url().option("max_attempts") == "2"
    jobs.sync.send({"n": 1})
    for _ in range(2):
        (message,) = jobs.sync.receive(visibility_timeout=30)
        jobs.sync.nack(message)
    assert jobs.sync.receive(wait=0) == []
    (dead,) = jobs.dead_letters().sync.receive()
    assert dead.body == {"n": 1}


def test_a_queue_url_and_its_subscriber_may_not_disagree_on_max_attempts(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text('[targets.local]\nqueue.jobs = "memory://jobs-x?max_attempts=4"\n')
    app = overcast.App("disagree", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")
    app.subscribe(jobs, max_attempts=2, name="worker")(lambda event: None)
    with pytest.raises(ConfigError, match=r"max_attempts=4 .* max_attempts=2"):
        jobs.sync.send({"n": 1})


def test_a_queue_handle_keeps_its_providers_default_visibility_timeout(tmp_path: Path) -> None:
    from overcast.providers.local.memory import MemoryQueue

    class SlowQueue(MemoryQueue):
        default_visibility_timeout = 90.0

    from overcast.resources.registry import register

    register("queue", "slowmem", f"{__name__}:_SlowQueue")
    globals()["_SlowQueue"] = SlowQueue
    (tmp_path / "overcast.toml").write_text('[targets.local]\nqueue.jobs = "slowmem://jobs-vis"\n')
    app = overcast.App("vis", config=tmp_path / "overcast.toml")
    assert app.queue("jobs").visibility_default() == 90.0
