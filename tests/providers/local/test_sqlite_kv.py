"""What is particular to the SQLite key-value store: the file, its table, WAL, processes, purging.

Versions, conflicts, TTL, pagination and limits are in the conformance suite.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.errors import ConfigError, Conflict, ProviderError
from overcast.providers.local import sqlite_kv
from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}" + (f"?{query}" if query else "")  # absolute: sqlite:////tmp/...


def _increment(store: SQLiteKeyValueStore, key: str, times: int) -> int:
    """Add one to ``key``'s count ``times`` times by read-modify-write; return the conflicts met."""
    conflicts = 0
    for _ in range(times):
        while True:
            item = store.sync.get(key)
            try:
                if item is None:
                    store.sync.put(key, {"n": 1}, if_absent=True)
                else:
                    store.sync.put(key, {"n": item.value["n"] + 1}, if_version=item.version)
                break
            except Conflict:
                conflicts += 1
    return conflicts


def _increment_in_process(url: str, key: str, times: int, start: Any, results: Any) -> None:
    store = SQLiteKeyValueStore(url)
    start.wait()
    results.put(_increment(store, key, times))
    store.close()


def test_opened_by_the_registry_and_created_on_first_use(tmp_path: Path) -> None:
    store = overcast.open_kv("sqlite:///data/app.db", base_dir=tmp_path)
    assert isinstance(store, SQLiteKeyValueStore)
    assert store.capabilities == {"ttl", "ordered_scan", "multiprocess", "put_if_newer", "put_with_log"}
    assert store.path == tmp_path / "data" / "app.db"
    assert not store.path.exists()
    store.sync.put("k", {"v": 1})  # no create() first: `overcast dev` needs no provision step
    assert store.path.is_file()
    store.sync.create()
    store.sync.create()
    assert store.sync.get("k") is not None


def test_absolute_url_and_wal_mode(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    store.sync.put("k", {"v": 1})
    raw = sqlite3.connect(tmp_path / "kv.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT key FROM kv").fetchall() == [("k",)]
    finally:
        raw.close()
    store.close()


def test_tables_in_one_file_are_separate(tmp_path: Path) -> None:
    users = SQLiteKeyValueStore(_url(tmp_path / "app.db", "table=users"))
    orders = SQLiteKeyValueStore(_url(tmp_path / "app.db", "table=orders"))
    users.sync.put("1", {"name": "ada"})
    orders.sync.put("1", {"total": 3})
    assert users.sync.get("1").value == {"name": "ada"}  # type: ignore[union-attr]
    assert orders.sync.get("1").value == {"total": 3}  # type: ignore[union-attr]
    assert [item.key for item in users.sync.scan()] == ["1"]


@pytest.mark.parametrize("table", ["users; DROP TABLE kv", "1abc", "a-b", ""])
def test_bad_table_name_is_a_config_error(tmp_path: Path, table: str) -> None:
    if not table:
        store = SQLiteKeyValueStore(_url(tmp_path / "a.db", "table="))
        assert store.table == "kv"
        return
    with pytest.raises(ConfigError, match="table"):
        SQLiteKeyValueStore(_url(tmp_path / "a.db", f"table={table}"))


def test_data_survives_reopening(tmp_path: Path) -> None:
    url = _url(tmp_path / "kv.db")
    first = SQLiteKeyValueStore(url)
    version = first.sync.put("k", {"v": 1})
    first.close()
    second = SQLiteKeyValueStore(url)
    item = second.sync.get("k")
    assert item is not None and item.version == version and item.value == {"v": 1}
    second.close()


def test_a_version_never_comes_back_after_delete_and_recreate(tmp_path: Path) -> None:
    url = _url(tmp_path / "kv.db")
    store, other = SQLiteKeyValueStore(url), SQLiteKeyValueStore(url)
    seen = set()
    stale = store.sync.put("k", {"v": 0})
    seen.add(stale)
    for i in range(50):
        writer = store if i % 2 else other
        assert writer.sync.delete("k")
        version = writer.sync.put("k", {"v": i})
        assert version not in seen
        seen.add(version)
    with pytest.raises(Conflict):
        store.sync.put("k", {"v": -1}, if_version=stale)


def test_conflict_names_the_resource_and_the_key(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"), name="users")
    store.sync.put("ada", {"v": 1})
    with pytest.raises(Conflict, match=r"users: key 'ada' already exists"):
        store.sync.put("ada", {"v": 2}, if_absent=True)
    with pytest.raises(Conflict, match=r"users: key 'ada' is at version .*, not at version nope"):
        store.sync.delete("ada", if_version="nope")


def test_expired_rows_are_invisible_replaceable_and_purged(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    store.sync.create()
    raw = sqlite3.connect(tmp_path / "kv.db", isolation_level=None)
    past = time.time() - 60
    raw.executemany(
        "INSERT INTO kv (key, value, version, expires_at) VALUES (?, ?, 'old', ?)",
        [(f"gone{i}", b'{"v":1}', past) for i in range(5)],
    )
    assert store.sync.get("gone0") is None
    assert store.sync.get_many(["gone0", "gone1"]) == {}
    assert list(store.sync.scan("gone")) == []
    assert store.sync.delete("gone2") is False
    with pytest.raises(Conflict):
        store.sync.put("gone3", {"v": 2}, if_version="old")
    store.sync.put("gone4", {"v": 2}, if_absent=True)
    assert store.sync.get("gone4").value == {"v": 2}  # type: ignore[union-attr]
    for i in range(sqlite_kv._PURGE_EVERY):
        store.sync.put(f"live{i % 10}", {"i": i})
    left = {key for (key,) in raw.execute("SELECT key FROM kv WHERE key LIKE 'gone%'")}
    raw.close()
    assert left == {"gone4"}


def test_scan_bounds_at_the_edges_of_unicode(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    top = "\U0010ffff"
    keys = ["a", f"a{top}", f"a{top}b", f"a{top}{top}", "b", "\ud7ffx", "\ue000", top, f"{top}z"]
    store.sync.put_many({key: {"k": key} for key in keys})
    assert [i.key for i in store.sync.scan(f"a{top}")] == [f"a{top}", f"a{top}b", f"a{top}{top}"]
    assert [i.key for i in store.sync.scan("\ud7ff")] == ["\ud7ffx"]
    assert [i.key for i in store.sync.scan(top)] == [top, f"{top}z"]
    assert [i.key for i in store.sync.scan()] == sorted(keys)


def test_get_many_past_one_statement(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    store.sync.put_many({f"k{i:04d}": {"i": i} for i in range(1200)})
    found = store.sync.get_many([f"k{i:04d}" for i in range(0, 2400, 2)])
    assert sorted(found) == [f"k{i:04d}" for i in range(0, 1200, 2)]


def test_not_a_database_is_a_provider_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    store = SQLiteKeyValueStore(_url(path), name="junk")
    with pytest.raises(ProviderError, match="junk") as caught:
        store.sync.get("k")
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(ProviderError):
        asyncio.run(store.ping())


def test_threads_increment_exactly(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    threads = [threading.Thread(target=_increment, args=(store, "count", 50)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.sync.get("count").value == {"n": 200}  # type: ignore[union-attr]
    assert len(store._connections) >= 4  # a connection per thread
    store.close()


@pytest.mark.slow
def test_processes_increment_exactly(tmp_path: Path) -> None:
    url = _url(tmp_path / "kv.db")
    SQLiteKeyValueStore(url).sync.create()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_increment_in_process, args=(url, "count", 100, start, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    conflicts = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    store = SQLiteKeyValueStore(url)
    assert store.sync.get("count").value == {"n": 200}  # type: ignore[union-attr]
    assert all(isinstance(n, int) for n in conflicts)


def test_a_forked_child_opens_its_own_connection_and_versions(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    version = store.sync.put("k", {"n": 1})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            child_version = store.sync.put("k", {"n": 2}, if_version=version)
            code = 0 if child_version.split("-")[0] != version.split("-")[0] else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    item = store.sync.get("k")
    assert item is not None and item.value == {"n": 2}


def test_an_async_put_waits_in_a_thread_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(_url(tmp_path / "kv.db"))
    store.sync.put("seed", {"n": 0})
    holder = sqlite3.connect(tmp_path / "kv.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction, still open

    async def scenario() -> tuple[bool, int, str]:
        put = asyncio.create_task(store.put("k", {"n": 1}))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the put waits
            await asyncio.sleep(0.01)
            ticks += 1
        waiting = not put.done()
        holder.execute("COMMIT")
        version = await put
        return waiting, ticks, version

    waiting, ticks, version = asyncio.run(scenario())
    assert waiting and ticks == 20
    item = store.sync.get("k")
    assert item is not None and item.value == {"n": 1} and item.version == version
    holder.close()
    store.close()
