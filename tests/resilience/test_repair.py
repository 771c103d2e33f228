"""`overcast repair` and ReplicatedKeyValueStore.repair: drift made by hand in real stores
(writes behind the store's back, a lost copy), found, counted, and repaired."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import overcast
from overcast.cli import cli
from overcast.resilience.clock import HybridClock
from resilience.pairs import replicated_url

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
    assert [[cell.strip() for cell in row[1:-1]][2:] for row in rows] == [["3", "2"], ["2", "1"]], result.output
    result = runner.invoke(cli, ["repair", str(tmp_path), "-t", "multi", "--dry-run"])
    assert "would repair" in result.output and result.output.count(" 0 ") >= 2, result.output

    result = runner.invoke(cli, ["repair", str(tmp_path), "-t", "multi", "-r", "orders"])
    assert result.exit_code != 0 and "no kv resource named 'orders'" in result.output
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
