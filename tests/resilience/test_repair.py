"""`overcast repair` and ReplicatedKeyValueStore.repair: drift made by hand in real stores
(writes behind the store's back, a lost copy), found, counted, and repaired."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import overcast
from chaos.proxy import BLACKHOLE, PASS, FaultProxy
from overcast.cli import cli
from overcast.resilience.clock import HybridClock
from resilience.pairs import replicated_url
from servers import Server

APP = """\
import overcast
app = overcast.App("repair-demo")
users = app.kv("users")
"""


def _drift(a: str, b: str) -> None:
    """Behind the replicated store's back: B loses a key, A gets an older copy of another,
    B gets a newer write that no log entry announces."""
    member_a, member_b = overcast.open_kv(a), overcast.open_kv(b)
    member_b.sync.delete("lost")
    older = f"{1:013x}{0:06x}-old"  # the first millisecond of 1970: older than every write
    member_a.sync.put("stale", {"_oc": older, "v": {"n": -1}})
    member_b.sync.put("unlogged", {"_oc": HybridClock("late").now(), "v": {"n": 99}})


def test_repair_finds_and_fixes_every_drift(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    store = overcast.open_kv(replicated_url(a, [b]))
    for key in ("lost", "stale", "unlogged", "fine"):
        store.sync.put(key, {"n": 1})
    asyncio.run(store.replicate())  # type: ignore[attr-defined]
    _drift(a, b)

    dry = asyncio.run(store.repair(dry_run=True))  # type: ignore[attr-defined]
    assert dry.keys == 4 and dry.repaired == {"primary": 2, "replica 1": 1}
    assert overcast.open_kv(b).sync.get("lost") is None  # a dry run changes nothing

    done = asyncio.run(store.repair())  # type: ignore[attr-defined]
    assert done.repaired == dry.repaired and done.read == {"primary": 4, "replica 1": 3}
    again = asyncio.run(store.repair(dry_run=True))  # type: ignore[attr-defined]
    assert again.drifted == 0
    assert store.sync.get("stale").value == {"n": 1}  # type: ignore[union-attr]
    assert store.sync.get("unlogged").value == {"n": 99}  # type: ignore[union-attr]
    assert overcast.open_kv(b).sync.get("lost").value["v"] == {"n": 1}  # type: ignore[union-attr]
    store.close()


def test_the_repair_command_prints_what_it_read_and_changed(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "overcast.toml").write_text(
        '[app]\nentry = "app:app"\n[targets.multi]\n'
        'kv.users = { primary = "sqlite:///a.db", replicas = ["sqlite:///b.db"] }\n'
    )
    url = replicated_url(f"sqlite:///{tmp_path}/a.db", [f"sqlite:///{tmp_path}/b.db"])
    store = overcast.open_kv(url)
    for key in ("lost", "stale", "unlogged"):
        store.sync.put(key, {"n": 1})
    asyncio.run(store.replicate())  # type: ignore[attr-defined]
    store.close()
    _drift(f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db")

    runner = CliRunner()
    result = runner.invoke(cli, ["repair", str(tmp_path), "--target", "multi"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│") for line in result.output.splitlines() if "users" in line]
    cells = [[cell.strip() for cell in row[1:-1]][2:] for row in rows]
    assert cells == [["3", "2", "0"], ["2", "1", "0"]], result.output
    result = runner.invoke(cli, ["repair", str(tmp_path), "-t", "multi", "--dry-run"])
    assert "(dry run)" in result.output and result.output.count(" 0 ") >= 4, result.output

    result = runner.invoke(cli, ["repair", str(tmp_path), "-t", "multi", "-r", "orders"])
    assert result.exit_code != 0 and "no kv or bucket resource named 'orders'" in result.output
    result = runner.invoke(cli, ["repair", str(tmp_path)])  # local target: nothing replicated
    assert result.exit_code != 0 and "has no replicated resource" in result.output


def test_an_app_handle_reaches_the_replicated_store_for_repair(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text(
        '[targets.multi]\nkv.users = { primary = "sqlite:///a.db", replicas = ["sqlite:///b.db"] }\n'
    )
    app = overcast.App("demo")
    app.use_config(tmp_path / "overcast.toml")
    users = app.kv("users")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OVERCAST_TARGET", "multi")
        users.sync.put("k", {"n": 1})
        report = asyncio.run(users.provider.repair())
        assert report.keys == 1
        assert [m["role"] for m in users.provider.health()] == ["primary", "replica 1"]
        app.reset()


def test_doctor_shows_each_member_and_the_log_entries_waiting(tmp_path: Path) -> None:
    (tmp_path / "doctor_app.py").write_text(APP)  # a module name of its own: others' "app" may be imported
    toml = (
        '[app]\nentry = "doctor_app:app"\n'
        '[targets.multi]\nkv.users = {{ primary = "sqlite:///a.db", replicas = [{}] }}\n'
    )
    (tmp_path / "overcast.toml").write_text(toml.format('"sqlite:///b.db"'))
    store: Any = overcast.open_kv(replicated_url(f"sqlite:///{tmp_path}/a.db", [f"sqlite:///{tmp_path}/b.db"]))
    store.replicator.stop()  # nothing ships: the write waits in the primary's log
    store.sync.put("k", {"n": 1})
    store.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["doctor", str(tmp_path), "-t", "multi"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "users · primary" in result.output and "users · replica 1" in result.output
    assert "change log entries waiting: primary 1, replica 1 0" in result.output

    other = tmp_path / "other"
    other.mkdir()
    (other / "doctor_app_2.py").write_text(APP.replace("repair-demo", "repair-demo-2"))
    (other / "overcast.toml").write_text(
        toml.replace("doctor_app:", "doctor_app_2:").format('"sqlite:///b.db", "redis://127.0.0.1:1/0"')
    )
    result = runner.invoke(cli, ["doctor", str(other), "-t", "multi"], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "users · replica 2" in result.output and "✗" in result.output


# -- buckets, the tombstone sweep, stale members -----------------------------------------


def _old_clock(origin: str = "old") -> str:
    return f"{1:013x}{0:06x}-{origin}"  # the first millisecond of 1970: past any horizon


def test_a_bucket_repair_finds_and_fixes_drift(tmp_path: Path) -> None:
    a, b = f"file:///{tmp_path}/a", f"file:///{tmp_path}/b"
    store: Any = overcast.open_bucket(replicated_url(a, [b]))
    for key in ("lost", "stale", "fine"):
        store.sync.put(key, key.encode())
    asyncio.run(store.replicate())
    member_a, member_b = overcast.open_bucket(a), overcast.open_bucket(b)
    member_b.sync.delete("lost")  # behind the store's back
    member_a.sync.put("stale", b"older", metadata={"occlock": _old_clock()})

    dry = asyncio.run(store.repair(dry_run=True))
    assert (dry.keys, dry.repaired) == (3, {"primary": 1, "replica 1": 1})
    assert member_b.sync.head("lost") is None  # a dry run changes nothing
    done = asyncio.run(store.repair())
    assert done.repaired == dry.repaired and done.read == {"primary": 3, "replica 1": 2}
    assert member_b.sync.get("lost") == b"lost" and store.sync.get("stale") == b"stale"
    assert asyncio.run(store.repair(dry_run=True)).drifted == 0
    store.close()


def test_tombstones_past_the_horizon_are_swept_only_where_every_member_agrees(tmp_path: Path) -> None:
    a, b = f"file:///{tmp_path}/a", f"file:///{tmp_path}/b"
    store: Any = overcast.open_bucket(replicated_url(a, [b], horizon="1h"))
    for key in ("old-gone", "recent-gone", "half-gone", "kept"):
        store.sync.put(key, b"x")
    store.sync.delete("recent-gone")
    asyncio.run(store.replicate())
    member_a, member_b = overcast.open_bucket(a), overcast.open_bucket(b)
    for member in (member_a, member_b):  # a delete made long ago, held by both
        member.sync.put("old-gone", b"", metadata={"occlock": _old_clock(), "ocdeleted": "1"})
    # an old tombstone on the primary while the replica still holds an older live copy
    member_a.sync.put("half-gone", b"", metadata={"occlock": f"{2:013x}{0:06x}-old", "ocdeleted": "1"})
    member_b.sync.put("half-gone", b"x", metadata={"occlock": _old_clock()})

    report = asyncio.run(store.repair())
    assert report.swept == {"primary": 1, "replica 1": 1}, report  # only old-gone
    assert report.repaired == {"primary": 0, "replica 1": 1}  # half-gone's tombstone shipped first
    assert member_a.sync.head("old-gone") is None and member_b.sync.head("old-gone") is None
    assert "ocdeleted" in member_a.sync.head("recent-gone").metadata  # type: ignore[union-attr]
    assert "ocdeleted" in member_b.sync.head("half-gone").metadata  # type: ignore[union-attr]
    swept = asyncio.run(store.repair())  # now both agree on half-gone's old tombstone
    assert swept.swept == {"primary": 1, "replica 1": 1} and swept.drifted == 0
    assert store.sync.get("kept") == b"x" and store.sync.head("half-gone") is None
    store.close()


def test_kv_tombstones_without_a_ttl_are_swept_by_repair(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    store: Any = overcast.open_kv(replicated_url(a, [b]))
    store.sync.put("live", {"n": 1})
    asyncio.run(store.replicate())
    for url in (a, b):  # written behind the store's back: no expiry, as on a member without TTLs
        overcast.open_kv(url).sync.put("gone", {"_oc": _old_clock(), "_del": 1})
    report = asyncio.run(store.repair())
    assert report.swept == {"primary": 1, "replica 1": 1} and report.drifted == 0
    assert overcast.open_kv(a).sync.get("gone") is None and overcast.open_kv(b).sync.get("gone") is None
    assert store.sync.get("live").value == {"n": 1}
    store.close()


def _replicate_until(store: Any, done: Any = None, seconds: float = 20.0) -> None:
    """Replicate until ``done()`` (else until one pass goes through): a connection the
    blackhole held may time out first."""
    until = time.monotonic() + seconds
    while True:
        assert time.monotonic() < until, "the replica did not come back"
        store.members[1].breaker.succeeded()
        try:
            asyncio.run(store.replicate())
        except overcast.errors.OvercastError:
            time.sleep(0.1)
            continue
        if done is None or done():
            return


def test_a_replica_away_past_the_horizon_is_resynced_whole_not_copied_back(
    redis_server: Server, tmp_path: Path
) -> None:
    """Redis (through a proxy the test cuts) is away longer than the 2 s horizon while a key
    is deleted; the primary's tombstone expires. Back, the replica must lose the key, not
    give it back to the primary; a replica away less than the horizon is not stale."""
    proxy = FaultProxy(redis_server.port)
    primary = f"sqlite:///{tmp_path}/a.db"
    replica = f"redis://127.0.0.1:{proxy.port}/0?prefix=stale-{tmp_path.name}"
    store: Any = overcast.open_kv(replicated_url(primary, [replica], horizon="2s", timeout="300ms"))
    try:
        for key in ("gone", "kept", "late"):
            store.sync.put(key, {"n": 1})
        asyncio.run(store.replicate())
        proxy.set(BLACKHOLE)
        store.sync.delete("gone")  # the primary keeps a tombstone for 2 s, then it expires
        time.sleep(3.0)
        proxy.set(PASS)
        _replicate_until(store, lambda: store.replicator.staleness.resynced == 1)
        assert not store.replicator.staleness.stale
        direct = overcast.open_kv(replica.replace(str(proxy.port), str(redis_server.port)))
        assert direct.sync.get("gone") is None  # removed from the replica ...
        assert store.sync.get("gone") is None  # ... and not copied back by a repair
        assert asyncio.run(store.repair()).drifted == 0 and store.sync.get("gone") is None
        assert direct.sync.get("kept").value["v"] == {"n": 1}  # type: ignore[union-attr]

        proxy.set(BLACKHOLE)  # away less than the horizon: not stale
        time.sleep(0.5)
        proxy.set(PASS)
        _replicate_until(store)
        assert store.replicator.staleness.resynced == 1
    finally:
        store.close()
        proxy.close()


def test_doctor_inspection_reports_a_member_whose_mark_is_past_the_horizon(tmp_path: Path) -> None:
    from overcast.resilience.health import inspect
    from overcast.resilience.staleness import MARK

    a, b = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    store: Any = overcast.open_kv(replicated_url(a, [b], horizon="1h"))
    try:
        store.sync.put("k", {"n": 1})
        asyncio.run(store.replicate())
        rows = asyncio.run(inspect(store))
        assert [(r["stale"], r["reached_s_ago"] < 60) for r in rows] == [(False, True), (False, True)]
        two_hours_ago = int((time.time() - 7200) * 1000)
        overcast.open_kv(b).sync.put(MARK, {"seen": two_hours_ago, "stale": False})
        rows = asyncio.run(inspect(store))
        assert [r["stale"] for r in rows] == [False, True] and rows[1]["reached_s_ago"] >= 7200
    finally:
        store.close()


def test_the_replication_schedule_ships_what_another_process_logged(tmp_path: Path) -> None:
    """Where a target replicates, the App declares ``overcast-replicate``: its run ships the logs
    (as a deployed function's schedule does, where no process stays up); a configuration that
    replicates nothing has none."""
    from overcast.resilience.spec import REPLICATE_SCHEDULE
    from overcast.runtime.dispatch import run_schedule

    (tmp_path / "overcast.toml").write_text(
        '[targets.multi]\nkv.users = { primary = "sqlite:///a.db", replicas = ["sqlite:///b.db"] }\n'
    )
    app = overcast.App("shipper")
    app.use_config(tmp_path / "overcast.toml")
    app.kv("users")
    job = next(job for job in app.schedules if job.name == REPLICATE_SCHEDULE)
    assert job.schedule.expression == "rate(1 minute)"
    # a write another process made and logged, then froze before shipping it
    primary, replica = (overcast.open_kv(f"sqlite:///{tmp_path}/{n}.db") for n in ("a", "b"))
    primary.sync.put("ada", {"_oc": HybridClock("other").now(), "v": {"name": "Ada"}})
    primary.sync.put("~oc-log~/ada", {"c": "x"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OVERCAST_TARGET", "multi")
        delivery = asyncio.run(run_schedule(job, app=app.name))
        assert delivery.error is None, delivery
        assert replica.sync.get("ada").value["v"] == {"name": "Ada"}  # type: ignore[union-attr]
        app.reset()
    (tmp_path / "none.toml").write_text('[targets.multi]\nkv.users = "sqlite:///a.db"\n')
    app.use_config(tmp_path / "none.toml")  # a configuration that replicates nothing: no such schedule
    assert not any(job.name == REPLICATE_SCHEDULE for job in app.schedules)
