"""``overcast backlog list|show|redrive|purge [APP] --target T`` on an app whose backlogs are
SQLite files, filled through the real delivery path."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overcast.cli import cli
from overcast.loader import load_app
from overcast.runtime.deferral import app_backlogs
from overcast.runtime.dispatch import deliver

runner = CliRunner()

APP = """
import overcast
from overcast.errors import Unavailable

app = overcast.App({name!r})
jobs = app.queue("jobs")
signups = app.topic("signups")


@app.subscribe(jobs, critical=False)
async def work(event):
    raise Unavailable("the image service is down")


@app.subscribe(signups, critical=False)
async def send_welcome(event):
    pass


@app.deferrable
async def send_mail(to: str) -> None:
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / f"proj{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "app.py").write_text(APP.format(name=f"cli{uuid.uuid4().hex[:6]}"))
    (folder / "overcast.toml").write_text('[app]\nentry = "app:app"\n\n[targets.local]\n')
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    monkeypatch.syspath_prepend(str(folder))
    app = load_app(str(folder))

    async def park() -> None:
        jobs, sub = app.resources["jobs"], app.subscriptions[0]
        await jobs.create()
        for n in range(3):
            await jobs.send({"n": n})
        while got := await jobs.receive(max_messages=10):
            for message in got:
                assert (await deliver(sub, jobs, message, app=app.name)).outcome == "deferred"
        backlog = app_backlogs(app)["jobs"]
        oldest = await backlog.queue.receive(max_messages=1)
        await backlog.dead_letter(oldest[0])

    asyncio.run(park())
    app.reset()
    return folder


def invoke(*args: str) -> str:
    result = runner.invoke(cli, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def test_list_show_redrive_purge(project: Path) -> None:
    listed = invoke("backlog", "list", str(project), "--target", "local")
    rows = {line.split("│")[1].strip(): line for line in listed.splitlines() if line.count("│") >= 5}
    assert set(rows) >= {"jobs", "signups/send_welcome", "send_mail"}
    cells = [cell.strip() for cell in rows["jobs"].split("│")[1:-1]]
    assert cells[:4] == ["jobs", "jobs-deferred", "2", "1"] and cells[4].endswith(" s")
    assert [cell.strip() for cell in rows["send_mail"].split("│")[1:-1]][2:4] == ["0", "0"]
    shown = invoke("backlog", "show", str(project), "--name", "jobs")
    # the first delivery failed and opened the breaker: the next two were parked without a call
    assert shown.count("breaker open") == 2 and "{'n': 1}" in shown and "{'n': 2}" in shown
    dead = invoke("backlog", "show", str(project), "--name", "jobs", "--dead")
    assert "{'n': 0}" in dead and "Unavailable: the image service is down" in dead and "{'n': 1}" not in dead
    assert "jobs: 1 item(s) re-driven" in invoke("backlog", "redrive", str(project), "--name", "jobs")
    listed = invoke("backlog", "list", str(project), "-n", "jobs")
    assert [c.strip() for c in listed.splitlines()[-2].split("│")[1:-1]][2:4] == ["3", "0"]
    assert "jobs: 3 item(s) deleted" in invoke("backlog", "purge", str(project), "-n", "jobs", "--yes")
    refused = runner.invoke(cli, ["backlog", "purge", str(project), "-n", "jobs"])
    assert refused.exit_code == 1 and "--yes" in refused.output
    unknown = runner.invoke(cli, ["backlog", "list", str(project), "-n", "nope"], env={"COLUMNS": "250"})
    assert unknown.exit_code == 1 and "no backlog 'nope'" in unknown.output and "send_mail" in unknown.output


def test_backlog_names_are_declared_without_opening_anything(project: Path) -> None:
    from overcast.runtime.deferral import backlog_names

    app = load_app(str(project))
    assert backlog_names(app) == {
        "jobs": "jobs-deferred",
        "signups/send_welcome": "signups-send_welcome-deferred",
        "send_mail": "send_mail-deferred",
    }
    assert set(backlog_names(app)) == set(app_backlogs(app))
    assert {label: b.queue.name for label, b in app_backlogs(app).items()} == backlog_names(app)


def test_long_backlog_names_are_shortened_with_a_hash() -> None:
    from overcast.config import check_resource_name
    from overcast.runtime.deferral import backlog_name

    long_topic, other = "t" * 60, "t" * 59 + "u"
    name = backlog_name(long_topic, "send_welcome")
    assert len(name) == 63 and name.endswith("-deferred") and check_resource_name("queue", name) == name
    assert name == backlog_name(long_topic, "send_welcome") != backlog_name(other, "send_welcome")
    assert backlog_name("jobs") == "jobs-deferred"


def test_the_dev_server_prints_a_deferred_delivery_with_its_cause() -> None:
    from rich.console import Console

    from overcast.errors import Unavailable
    from overcast.providers.local.devserver import print_delivery
    from overcast.runtime.dispatch import Delivery

    console = Console(record=True, width=200)
    show = print_delivery(console)
    show(Delivery("signups/send_welcome", "send_welcome", "m-1", 1, "deferred", 0.01, cause=Unavailable("bucket down")))
    show(Delivery("signups/send_welcome", "send_welcome", "m-2", 1, "deferred", 0.0))
    text = console.export_text()
    assert "deferred" in text and "(Unavailable: bucket down; parked until it answers again)" in text
    assert "(breaker open; parked until it answers again)" in text


def test_doctor_shows_each_backlogs_depth_dead_letters_and_oldest_age(project: Path) -> None:
    doctor = invoke("doctor", str(project), "--target", "local")
    rows = {line.split("│")[2].strip(): line for line in doctor.splitlines() if line.count("│") >= 4}
    assert "backlog: 2 waiting, 1 dead letters, oldest" in rows["jobs-deferred"]
    assert re.search(r"oldest \d+ s", rows["jobs-deferred"])
    assert "backlog: 0 waiting, 0 dead letters" in rows["send_mail-deferred"]
    assert "reachable" in rows["overcast-backlogs"] and "backlog:" not in rows["overcast-backlogs"]  # the leases
    assert "every resource is reachable" in doctor


def test_the_health_endpoint_shows_each_backlogs_depth_age_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from starlette.applications import Starlette

    import overcast
    from overcast.errors import Unavailable

    monkeypatch.setenv("OVERCAST_TARGET", "local")
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App(f"health{uuid.uuid4().hex[:6]}", config=tmp_path / "overcast.toml")
    jobs = app.queue("jobs")
    app.http(Starlette())

    @app.subscribe(jobs, critical=False)
    async def work(event: overcast.CloudEvent) -> None:
        raise Unavailable("down")

    @app.deferrable
    async def later() -> None: ...

    async def run() -> dict[str, object]:
        await app.provision()
        for n in range(2):
            await jobs.send({"n": n})
        while got := await jobs.receive(max_messages=10):
            for message in got:
                await deliver(app.subscriptions[0], jobs, message, app=app.name)
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            reply = await client.get("/_overcast/health")
        assert reply.status_code == 200
        body: dict[str, object] = reply.json()
        return body

    body = asyncio.run(run())
    backlogs = body["backlogs"]
    assert isinstance(backlogs, dict)
    jobs_row = backlogs["jobs-deferred"]
    assert jobs_row["depth"] == 2 and jobs_row["parked"] == 2 and jobs_row["replayed"] == 0
    assert jobs_row["dead_letters"] == 0 and jobs_row["replay_failures"] == 0
    assert isinstance(jobs_row["oldest_age_s"], float) and jobs_row["oldest_age_s"] >= 0
    assert backlogs["later-deferred"] == {"depth": 0}  # not opened by this process: its depth alone
