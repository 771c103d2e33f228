"""Deploy wiring of deferred processing: the backlog queues and the internal replay schedule
are declared on the App, so ``overcast plan`` renders them like any queue and schedule; a
scheduled replay keeps to its budget."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import overcast
from overcast.cli import cli
from overcast.errors import Unavailable
from overcast.handles import BacklogQueueHandle
from overcast.runtime.deferral import REPLAY_SCHEDULE, replay_budget, subscription_deferral, subscription_replayer

APP = """
import overcast

app = overcast.App("mailer")
signups = app.topic("signups")
jobs = app.queue("jobs")


@app.subscribe(signups, critical=False)
async def send_welcome(event): ...


@app.subscribe(jobs, critical=False)
async def work(event): ...


@app.deferrable
async def update_crm(customer: str) -> None: ...
"""

TOML = """[app]
entry = "mailer:app"

[targets.local]

[targets.aws]
region = "us-east-1"
topic.signups = "sns://mailer-signups"
queue.jobs = "sqs://mailer-jobs"
"""


@pytest.fixture
def mailer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    (tmp_path / "mailer.py").write_text(APP)
    (tmp_path / "overcast.toml").write_text(TOML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def planned(folder: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["plan", "--target", "aws"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads((folder / ".overcast" / "build" / "aws" / "main.tf.json").read_text())
    return document["resource"]


def test_overcast_plan_declares_each_backlog_queue_and_the_replay_schedule(mailer: Path) -> None:
    resources = planned(mailer)
    queues = {body["name"]: body for body in resources["aws_sqs_queue"].values()}
    backlogs = {"mailer-signups-send-welcome-deferred", "mailer-jobs-deferred", "mailer-update-crm-deferred"}
    assert backlogs <= set(queues), sorted(queues)
    for name in backlogs:  # the replayer counts failures: SQS never dead-letters a backlog item by itself
        assert json.loads(queues[name]["redrive_policy"])["maxReceiveCount"] == 1000
        assert f"{name}-dlq" in queues
    tables = {body["name"] for body in resources["aws_dynamodb_table"].values()}
    assert "mailerovercastbacklogs" in tables  # the replayers' leases
    rules = resources["aws_cloudwatch_event_rule"]
    assert rules["schedule_overcast_replay"] == {
        "name": "mailer-overcast-replay",
        "schedule_expression": "rate(1 minute)",
    }
    assert "schedule_overcast_replay" in resources["aws_lambda_permission"]
    policy = json.loads(resources["aws_iam_role_policy"]["function"]["policy"])
    granted = {(a, r) for s in policy["Statement"] for a in s["Action"] for r in s["Resource"]}
    for name in backlogs:  # parks, replays, and dead-letters an item that keeps failing
        arn = f"arn:aws:sqs:${{var.region}}:${{data.aws_caller_identity.current.account_id}}:{name}"
        assert {("sqs:SendMessage", arn), ("sqs:ReceiveMessage", arn), ("sqs:DeleteMessage", arn)} <= granted
        assert ("sqs:SendMessage", f"{arn}-dlq") in granted


def test_a_backlog_follows_the_targets_queue_template_when_it_has_one(mailer: Path) -> None:
    toml = mailer / "overcast.toml"
    toml.write_text(toml.read_text() + 'defaults.queue = "sqs://{app}-{name}?visibility_timeout=120"\n')
    queues = {body["name"]: body for body in planned(mailer)["aws_sqs_queue"].values()}
    assert queues["mailer-signups-send_welcome-deferred"]["visibility_timeout_seconds"] == 120


def test_the_replay_schedule_is_declared_once_and_only_for_non_critical_work(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App("plain", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")

    @app.subscribe(jobs)
    async def critical(event: overcast.CloudEvent) -> None: ...

    assert app.schedules == [] and list(app.resources) == ["jobs"]

    @app.deferrable
    async def later() -> None: ...

    @app.deferrable
    async def again() -> None: ...

    assert [job.name for job in app.schedules] == [REPLAY_SCHEDULE]
    assert [h.kind for h in app.resources.values()].count("kv") == 1  # one lease store for every backlog
    assert all(isinstance(app.resources[n], BacklogQueueHandle) for n in ("later-deferred", "again-deferred"))


def test_the_replay_budget_stays_inside_the_function_timeout() -> None:
    assert replay_budget(30) == 24.0
    assert replay_budget(900) == 50.0  # and inside the schedule's minute
    assert replay_budget(3) == 1.0
    assert all(replay_budget(t) < t for t in (2, 5, 10, 60, 300))


def test_a_bounded_replay_gives_back_what_it_holds_when_its_budget_runs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dependency goes down again in the middle of a scheduled replay: the item in hand is
    held (not failed) until the budget runs out, then given back, and the next replay finishes."""
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App("budget", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")
    state: dict[str, Any] = {"down": True, "done": []}

    @app.subscribe(jobs, critical=False)
    async def work(event: overcast.CloudEvent) -> None:
        if state["down"]:
            raise Unavailable("down")
        state["done"].append(event.data["n"])
        if len(state["done"]) == 2:
            state["down"] = True  # down again after two items

    async def run() -> float:
        from overcast.runtime.dispatch import deliver

        sub = app.subscriptions[0]
        await jobs.create()
        for n in range(5):
            await jobs.send({"n": n})
        while got := await jobs.receive(max_messages=10):
            for message in got:
                assert (await deliver(sub, jobs, message, app=app.name)).outcome == "deferred"
        state["down"] = False
        subscription_deferral(sub, app.name).breaker.succeeded()
        started = time.monotonic()
        await subscription_replayer(sub, app=app.name, wait=0.0).drain(timeout=1.5)
        took = time.monotonic() - started
        assert state["done"] == [0, 1]
        state["down"] = False
        await asyncio.sleep(1.1)  # past the breaker's cooldown: the next replay probes and goes on
        stats = await subscription_replayer(sub, app=app.name, wait=0.0).drain(timeout=20)
        assert state["done"] == [0, 1, 2, 3, 4], "nothing lost, in the order parked"
        assert stats.replay_failures == 0 and stats.dead_lettered == 0
        return took

    took = asyncio.run(run())
    assert took < 1.5 + 1.0, "the replay ended near its budget, not after the item's visibility timeout"


def test_the_oldest_parked_items_age_is_a_gauge_per_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric_reader: Any
) -> None:
    from metrics_support import points
    from overcast.runtime.deferral import app_replayers
    from overcast.runtime.dispatch import deliver

    monkeypatch.setenv("OVERCAST_TARGET", "local")
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App("agegauge", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")

    @app.subscribe(jobs, critical=False)
    async def work(event: overcast.CloudEvent) -> None:
        raise Unavailable("down")

    async def park() -> None:
        await jobs.create()
        await jobs.send({"n": 1})
        (message,) = await jobs.receive(max_messages=1)
        assert (await deliver(app.subscriptions[0], jobs, message, app=app.name)).outcome == "deferred"

    asyncio.run(park())
    app_replayers(app)
    time.sleep(0.05)
    ages = [p for p in points(metric_reader, "overcast.deferred.oldest_age") if p.attributes == {"backlog": "jobs"}]
    assert len(ages) == 1 and ages[0].value >= 0.05


def test_the_dev_server_replays_continuously_instead_of_firing_the_replay_schedule(tmp_path: Path) -> None:
    from overcast.providers.local.devserver import DevWorkers

    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App("devreplay", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")

    @app.subscribe(jobs, critical=False)
    async def work(event: overcast.CloudEvent) -> None: ...

    @app.schedule("rate(1 hour)")
    async def hourly() -> None: ...

    async def names() -> set[str]:
        async with DevWorkers(app, on_delivery=lambda d: None, wait=0.1) as workers:
            return {task.get_name() for task in workers.tasks}

    started = asyncio.run(names())
    assert {"overcast schedule hourly", "overcast replay jobs"} <= started
    assert f"overcast schedule {REPLAY_SCHEDULE}" not in started
