"""The ``timeout`` URL option of the embedded stores: a call waits for another process's
lock up to it, then is ``Unavailable`` naming it; a lock released in time is waited for.

The lock is held by a plain ``sqlite3`` connection (another program, or a process stuck in
a transaction) or by ``flock`` on the files store's lock file, as another writer would.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from overcast.errors import ConfigError, Unavailable
from overcast.providers.local.files import FileBlobStore
from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore
from overcast.providers.local.sqlite_queue import SQLiteQueue, SQLiteTopic


@contextmanager
def _sqlite_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock of ``path`` until the block ends (or it commits)."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("COMMIT")
        holder.close()


@contextmanager
def _files_lock(root: Path, key: str) -> Iterator[int]:
    """Another writer of ``key`` holding its lock file (the stripe the store picks for it)."""
    locks = root / ".overcast" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{zlib.crc32(key.encode()) % 64:02d}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)


def _unavailable_after(call: Callable[[], object]) -> tuple[Unavailable, float]:
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        call()
    return caught.value, time.monotonic() - started


def _release_later(release: Callable[[], object], after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), release()))
    thread.start()
    return thread


def test_kv_waits_out_the_deadline_then_names_it(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(f"sqlite:///{tmp_path / 'kv.db'}?timeout=0.5")
    store.sync.put("seed", {"n": 0})
    with _sqlite_lock(store.path):
        error, waited = _unavailable_after(lambda: store.sync.put("k", {"n": 1}))
        assert store.sync.get("seed") is not None  # reads never wait in WAL mode
    assert "0.5 s" in str(error) and "timeout" in str(error) and str(store.path) in str(error)
    assert 0.4 < waited < 0.5 * 3 + 2  # the deadline, not ours by default (30 s)
    store.sync.put("k", {"n": 1})
    store.close()


def test_kv_async_put_waits_out_the_deadline_off_the_loop(tmp_path: Path) -> None:
    import asyncio

    store = SQLiteKeyValueStore(f"sqlite:///{tmp_path / 'kv.db'}?timeout=0.5")
    store.sync.put("seed", {"n": 0})
    with _sqlite_lock(store.path):
        error, _ = _unavailable_after(lambda: asyncio.run(store.put("k", {"n": 1}, if_absent=True)))
    assert "timeout" in str(error)
    store.close()


def test_kv_a_lock_released_within_the_deadline_is_waited_for(tmp_path: Path) -> None:
    store = SQLiteKeyValueStore(f"sqlite:///{tmp_path / 'kv.db'}?timeout=5")
    version = store.sync.put("k", {"n": 0})
    with _sqlite_lock(store.path) as holder:
        releaser = _release_later(lambda: holder.execute("COMMIT"), 0.3)
        store.sync.put("k", {"n": 1}, if_version=version)
        releaser.join()
    item = store.sync.get("k")
    assert item is not None and item.value == {"n": 1}
    store.close()


def test_kv_first_use_waits_for_a_file_locked_by_another_process(tmp_path: Path) -> None:
    """A new file's setting up (WAL, the table) waits for the lock like a write does."""
    path = tmp_path / "kv.db"
    sqlite3.connect(path).close()
    store = SQLiteKeyValueStore(f"sqlite:///{path}?timeout=5")
    with _sqlite_lock(path) as holder:
        releaser = _release_later(lambda: holder.execute("COMMIT"), 0.3)
        store.sync.put("k", {"n": 1}, if_absent=True)
        releaser.join()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_queue_and_topic_wait_out_the_deadline_then_name_it(tmp_path: Path) -> None:
    queue = SQLiteQueue(f"sqlite:///{tmp_path / 'q.db'}?timeout=0.5")
    queue.sync.send("first")
    topic = SQLiteTopic(f"sqlite:///{tmp_path / 't.db'}?timeout=0.5")
    topic.subscription("s").sync.create()
    with _sqlite_lock(tmp_path / "q.db"), _sqlite_lock(tmp_path / "t.db"):
        for call in (lambda: queue.sync.send("second"), lambda: queue.sync.receive(), lambda: topic.sync.publish(1)):
            error, waited = _unavailable_after(call)
            assert "0.5 s" in str(error) and "timeout" in str(error)
            assert 0.4 < waited < 0.5 * 3 + 2
    (message,) = queue.sync.receive()
    assert message.body == "first"
    queue.close()
    topic.close()


def test_queue_a_lock_released_within_the_deadline_is_waited_for(tmp_path: Path) -> None:
    queue = SQLiteQueue(f"sqlite:///{tmp_path / 'q.db'}?timeout=5")
    queue.sync.send("first")
    with _sqlite_lock(tmp_path / "q.db") as holder:
        releaser = _release_later(lambda: holder.execute("COMMIT"), 0.3)
        (message,) = queue.sync.receive()
        releaser.join()
    queue.sync.ack(message)
    assert queue.sync.receive() == []
    queue.close()


def test_files_write_waits_out_the_deadline_then_names_it(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    bucket = FileBlobStore(f"file://{root}?timeout=0.5")
    bucket.sync.put("k", b"old")
    with _files_lock(root, "k"):
        for call in (lambda: bucket.sync.put("k", b"new"), lambda: bucket.sync.delete("k")):
            error, waited = _unavailable_after(call)
            assert "'k'" in str(error) and "0.5 s" in str(error) and "timeout" in str(error)
            assert 0.4 < waited < 0.5 * 3 + 2
        assert bucket.sync.get("k") == b"old"  # reads take no lock
    assert not list((root / ".overcast" / "tmp").iterdir())  # the refused upload left nothing
    bucket.sync.put("k", b"new")
    assert bucket.sync.get("k") == b"new"


def test_files_a_lock_released_within_the_deadline_is_waited_for(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    bucket = FileBlobStore(f"file://{root}?timeout=5")
    info = bucket.sync.put("k", b"old")
    with _files_lock(root, "k") as fd:
        releaser = _release_later(lambda: fcntl.flock(fd, fcntl.LOCK_UN), 0.3)
        bucket.sync.put("k", b"new", if_etag=info.etag)
        releaser.join()
    assert bucket.sync.get("k") == b"new"


@pytest.mark.parametrize(
    ("kind", "url"),
    [(SQLiteKeyValueStore, "sqlite:///{}/x.db"), (SQLiteQueue, "sqlite:///{}/x.db"), (FileBlobStore, "file://{}/b")],
    ids=["kv", "queue", "files"],
)
@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_bad_timeout_is_refused_naming_the_option(tmp_path: Path, kind: type, url: str, value: str) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        kind(url.format(tmp_path) + f"?timeout={value}")
