"""A replay whose handler kills its own process counts as a failed replay.

Real processes (``os._exit(1)`` in the handler: nothing runs after it, as with a segfault or the
out-of-memory killer) replay a real backlog, on SQLite (the embedded default) and on Redis and
SQS (moto) servers, with the lease store (where the give-backs are recorded) beside it. A poison
item that kills every process replaying it reaches the dead letters after ``max_failures`` runs
of its own; an item whose first replay died, and the items in hand with it, are handled exactly
once; nothing is lost.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from overcast.runtime.deferral import subscription_deferral
from servers import Server

MAX_FAILURES = 2

APP = """
import os
import overcast
from overcast.errors import Unavailable

app = overcast.App(os.environ["DIE_APP"], config=os.path.join(os.path.dirname(__file__), "overcast.toml"))
jobs = app.queue("jobs")


@app.subscribe(jobs, critical=False)
async def work(event):
    if os.environ.get("DEPENDENCY_DOWN"):
        raise Unavailable("the dependency is down")
    with open(os.environ["STARTS"], "a") as starts:  # written before the handler may die
        starts.write(event.data["kind"] + "\\n")
    marker = os.path.join(os.environ["WORK"], "once-" + event.id)
    if event.data["kind"] == "poison" or (event.data["kind"] == "once" and not os.path.exists(marker)):
        open(marker, "w").close()
        os._exit(1)  # no clean-up, no exception: the process is gone
    with open(os.environ["HANDLED"], "a") as handled:
        handled.write(event.id + "\\n")
"""

RUNNER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from dieapp import app
from overcast.runtime.deferral import subscription_replayer

async def main():
    replayer = subscription_replayer(
        app.subscriptions[0], app=app.name, max_failures=int(sys.argv[2]), rate=1000, wait=0.05,
        visibility=float(sys.argv[3]),
    )
    stats = await replayer.drain(timeout=20)
    print(stats.replayed, stats.replay_failures, stats.dead_lettered)

asyncio.run(main())
"""

#: parked in this order; the poison in the middle, an item dying once before it
KINDS = ["ok", "ok", "once", "ok", "poison", "ok", "ok"]


def config(family: str, tmp_path: Path, request: pytest.FixtureRequest, run: str) -> str:
    if family == "sqlite":
        return "[targets.local]\n"  # queues, backlogs and the lease store: SQLite files under tmp_path
    if family == "redis":
        server: Server = request.getfixturevalue("redis_server")
        base = server.env["OVERCAST_TEST_REDIS_URL"]
        each = f"{base}?prefix=die-{{name}}-{run}"  # the prefix is the queue: one per name
        return f'[targets.local]\ndefaults.queue = "{each}"\ndefaults.kv = "{each}"\n'
    request.getfixturevalue("moto_server")
    return f'[targets.local]\ndefaults.queue = "sqs://{{name}}-{run}"\ndefaults.kv = "dynamodb://{{name}}-{run}"\n'


def load_app(tmp_path: Path) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"dieapp_{uuid.uuid4().hex}", tmp_path / "dieapp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


async def park(app: object) -> list[str]:
    """Each kind delivered once while its dependency is down: parked, in order."""
    from overcast.runtime.dispatch import deliver

    jobs, sub = app.resources["jobs"], app.subscriptions[0]  # type: ignore[attr-defined]
    await jobs.create()
    ids = []
    for n, kind in enumerate(KINDS):
        ids.append(await jobs.send({"n": n, "kind": kind}))
        for message in await jobs.receive(max_messages=1):
            assert (await deliver(sub, jobs, message, app=app.name)).outcome == "deferred"  # type: ignore[attr-defined]
    return ids


@pytest.mark.parametrize("family", ["sqlite", "redis", "sqs"])
def test_a_handler_that_kills_its_process_reaches_the_dead_letters_after_n_runs(
    family: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    # the replayer's visibility timeout (and lease): what a process that died held comes back after
    # it (SQS counts it in whole seconds)
    visibility = 1.0 if family == "sqs" else 0.5
    (tmp_path / "overcast.toml").write_text(config(family, tmp_path, request, run))
    (tmp_path / "dieapp.py").write_text(APP)
    (tmp_path / "runner.py").write_text(RUNNER)
    starts, handled = tmp_path / "starts.txt", tmp_path / "handled.txt"
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    monkeypatch.setenv("DIE_APP", f"die{run}")
    monkeypatch.setenv("DEPENDENCY_DOWN", "1")
    app = load_app(tmp_path)
    ids = asyncio.run(park(app))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "STARTS": str(starts), "HANDLED": str(handled)}
    env.update(WORK=str(tmp_path))
    env.pop("DEPENDENCY_DOWN")
    exits = []
    for _ in range(MAX_FAILURES + 4):
        done = subprocess.run(
            [sys.executable, str(tmp_path / "runner.py"), str(tmp_path), str(MAX_FAILURES), str(visibility)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        exits.append(done.returncode)
        if done.returncode == 0:
            break
        assert done.returncode == 1, done.stderr  # died in the handler, nothing else
        time.sleep(visibility + 0.3)  # what the dead process held comes back, its lease expires
    kinds = starts.read_text().split()
    assert kinds.count("poison") == MAX_FAILURES, "the poison ran max_failures times, then no more"
    assert kinds.count("once") == 2, "died once, then handled"
    # one run died on 'once', MAX_FAILURES on the poison, and the next put it in the dead letters
    assert exits == [1] * (MAX_FAILURES + 1) + [0], exits
    # the last run found the poison's deaths (none of the dead processes could count its own)
    assert done.stdout.split()[1:] == [str(MAX_FAILURES), "1"], "counted as failed replays, then dead-lettered"
    lines = handled.read_text().split()
    good = [i for i, kind in zip(ids, KINDS, strict=True) if kind != "poison"]
    assert sorted(lines) == sorted(good), "every other item handled exactly once, none lost"
    if family != "sqs":  # an ordered backlog: in the order parked
        assert lines == good
    monkeypatch.setenv("DEPENDENCY_DOWN", "1")  # (the parent's app: not replaying)
    backlog = subscription_deferral(app.subscriptions[0], app.name).backlog  # type: ignore[attr-defined]
    dead = asyncio.run(backlog.peek(5, dead=True))
    assert [m.body["work"]["event"]["data"]["kind"] for m in dead] == ["poison"]
    assert dead[0].body["failures"] == MAX_FAILURES
    assert asyncio.run(backlog.depth()) in (0, None)
    assert asyncio.run(backlog.redrive()) == 1, "redrive puts it back"


def test_items_given_back_are_not_counted_as_deaths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Receives that end in a give-back (the dependency down again until the replay's budget ran
    out, the backlog read by ``overcast backlog show`` on a queue without a native peek) are
    recorded in the ledger, so more of them than ``max_failures`` dead-letter nothing; the
    records are gone once the items are replayed."""
    from overcast.errors import Unavailable
    from overcast.runtime.deferral import BACKLOG_STATE, subscription_replayer

    monkeypatch.setenv("OVERCAST_TARGET", "local")
    (tmp_path / "overcast.toml").write_text("[targets.local]\n")
    app = overcast_app(tmp_path)
    state = {"down": True, "done": []}

    @app.subscribe(app.queue("jobs"), critical=False)
    async def work(event: object) -> None:
        if state["down"]:
            raise Unavailable("the dependency is down")
        state["done"].append(event.id)  # type: ignore[attr-defined]

    async def main() -> None:
        sub = app.subscriptions[0]
        deferral = subscription_deferral(sub, app.name)
        ids = [
            await deferral.park("event", {"event": {"id": f"e{n}", "source": "s", "type": "t"}}, None) for n in range(3)
        ]
        backlog = deferral.backlog
        for _ in range(MAX_FAILURES + 2):  # each time: received, held while down, given back at the budget's end
            deferral.breaker.succeeded()
            stats = await subscription_replayer(sub, app=app.name, max_failures=MAX_FAILURES, wait=0).drain(timeout=0.3)
            read = await backlog.queue.receive(max_messages=10)  # as a CLI reads a queue without a native peek
            await backlog.give_back(read)
        assert stats.replayed == 0 and stats.replay_failures == 0
        state["down"] = False
        deferral.breaker.succeeded()
        stats = await subscription_replayer(sub, app=app.name, max_failures=MAX_FAILURES, wait=0).drain(timeout=20)
        assert (stats.replayed, stats.replay_failures, stats.dead_lettered) == (3, 0, 0)
        assert state["done"] == ["e0", "e1", "e2"] and len(ids) == 3
        page = await app.resources[BACKLOG_STATE].page("returned-")
        assert page.items == [], "the ledger forgets a settled item"

    asyncio.run(main())


def overcast_app(tmp_path: Path) -> Any:
    import overcast

    return overcast.App(f"giveback{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
