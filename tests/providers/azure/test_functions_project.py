"""``render_project``: ``function_app.py`` and ``host.json`` for the Functions host, and
schedules in NCRONTAB (checked against the EventBridge meaning with croniter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from azf_support import CONFIG
from croniter import croniter

import overcast
from overcast.errors import ConfigError
from overcast.providers.azure.functions import ncrontab, render_project
from overcast.runtime.schedule import parse_schedule

DEMO_APP = """
import overcast
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

app = overcast.App("demo")
jobs = app.queue("jobs")
signups = app.topic("signups")
app.bucket("avatars")


async def home(request):
    return PlainTextResponse("hi")


app.http(Starlette(routes=[Route("/", home)]))


@app.subscribe(jobs, max_attempts=7)
async def work(event):
    pass


@app.subscribe(signups)
async def welcome(event):
    pass


@app.schedule("cron(0 3 ? * MON-FRI *)")
async def nightly():
    pass
"""


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("rate(1 minute)", "0 * * * * *"),
        ("rate(5 minutes)", "0 */5 * * * *"),
        ("rate(30 minutes)", "0 */30 * * * *"),
        ("rate(60 minutes)", "0 0 * * * *"),
        ("rate(1 hour)", "0 0 * * * *"),
        ("rate(6 hours)", "0 0 */6 * * *"),
        ("rate(24 hours)", "0 0 0 * * *"),
        ("rate(1 day)", "0 0 0 * * *"),
        ("cron(0 3 * * ? *)", "0 0 3 * * *"),
        ("cron(15 10 ? * 2-6 *)", "0 15 10 * * 1-5"),
        ("cron(0/15 * * * ? *)", "0 0-59/15 * * * *"),
        ("cron(5/20 8-17 ? * MON-FRI *)", "0 5-59/20 8-17 * * MON-FRI"),
        ("cron(0 8 1 JAN,JUL ? *)", "0 0 8 1 JAN,JUL *"),
        ("cron(30 6 ? * 1,7 *)", "0 30 6 * * 0,6"),
    ],
)
def test_schedules_in_ncrontab(expression: str, expected: str) -> None:
    schedule = parse_schedule(expression)
    text, years = ncrontab(schedule)
    assert (text, years) == (expected, None)
    # A cron fires when EventBridge's would; a rate keeps its interval (its phase is the clock's).
    start = datetime(2026, 3, 1, 12, 7, tzinfo=UTC)
    itr = croniter(text, start, second_at_beginning=True)
    firings = [itr.get_next(datetime) for _ in range(5)]
    if schedule.interval is not None:
        assert {b - a for a, b in pairwise(firings)} == {schedule.interval}
    else:
        moment = start
        for got in firings:
            moment = schedule.next_after(moment)
            assert got == moment, (expression, got, moment)


def test_day_rates_step_the_day_of_the_month() -> None:
    assert ncrontab(parse_schedule("rate(3 days)")) == ("0 0 0 */3 * *", None)


def test_years_are_kept_for_the_timer_to_check() -> None:
    assert ncrontab(parse_schedule("cron(0 3 * * ? 2027-2028)")) == ("0 0 3 * * *", "2027-2028")


@pytest.mark.parametrize("expression", ["rate(7 minutes)", "rate(90 minutes)", "rate(5 hours)", "rate(40 days)"])
def test_intervals_ncrontab_cannot_keep_are_refused(expression: str) -> None:
    with pytest.raises(ConfigError, match=r"cannot fire at this interval"):
        ncrontab(parse_schedule(expression))


def test_last_day_of_month_is_refused() -> None:
    with pytest.raises(ConfigError, match="no L or W"):
        ncrontab(parse_schedule("cron(0 0 L * ? *)"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, overcast.App]:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    (tmp_path / "overcast.toml").write_text(CONFIG)
    (tmp_path / "demo_app.py").write_text(DEMO_APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("demo_app", None)
    import demo_app  # type: ignore[import-not-found]

    return tmp_path, demo_app.app


def test_render_project_writes_host_json(project: tuple[Path, overcast.App]) -> None:
    folder, app = project
    files = render_project(app, folder / "out", event_grid={"uploads": "welcome"}, blobs={"avatars": "work"})
    assert set(files) == {"function_app.py", "host.json"}
    host = json.loads(files["host.json"].read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert host["extensionBundle"]["version"].startswith("[4.")
    assert host["extensions"]["http"] == {"routePrefix": ""}
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 7
    assert isinstance(queues["visibilityTimeout"], str) and queues["visibilityTimeout"].count(":") == 2
    assert queues.get("messageEncoding", "base64") in ("base64", "none")


def test_the_rendered_entry_imports_and_builds_the_function_app(project: tuple[Path, overcast.App]) -> None:
    folder, app = project
    out = folder / "out"
    render_project(app, out, event_grid={"uploads": "welcome"})
    source = (out / "function_app.py").read_text()
    assert "from demo_app import app as overcast_app" in source
    assert "event_grid={'uploads': 'welcome'}" in source
    # As the worker indexes it: import function_app.py, find the FunctionApp, list its functions.
    probe = (
        "import json, function_app, azure.functions as func\n"
        "assert isinstance(function_app.app, func.FunctionApp)\n"
        "print(json.dumps({f.get_function_name(): json.loads(f.get_function_json()) "
        "for f in function_app.app.get_functions()}))\n"
    )
    env = dict(os.environ, OVERCAST_TARGET="azure", PYTHONPATH=os.pathsep.join([str(out), str(folder)]))
    env.pop("OVERCAST_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    functions = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(functions) == {
        "http",
        "queue_jobs",
        "topic_signups_welcome",
        "schedule_nightly",
        "eventgrid",
        "eventgrid_uploads",
    }
    for spec in functions.values():
        assert spec["scriptFile"] == "function_app.py"
        assert len([b for b in spec["bindings"] if b["direction"] == "IN" and b["type"].endswith("Trigger")]) == 1
    assert functions["schedule_nightly"]["bindings"][0]["schedule"] == "0 0 3 * * MON-FRI"


def test_render_project_needs_an_entry_and_names(project: tuple[Path, overcast.App], tmp_path: Path) -> None:
    _, app = project
    with pytest.raises(ConfigError, match="must name subscriptions"):
        render_project(app, tmp_path / "x", event_grid={"uploads": lambda event: None})
    with pytest.raises(ConfigError, match="not 'module:attribute'"):
        render_project(app, tmp_path / "x", entry="demo app:app")
    assert not (tmp_path / "x").exists()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "overcast.toml").write_text(CONFIG.replace('entry = "demo_app:app"', ""))
    bare = overcast.App("bare", config=tmp_path / "plain" / "overcast.toml")
    with pytest.raises(ConfigError, match=r"needs the app's entry"):
        render_project(bare, tmp_path / "x")
