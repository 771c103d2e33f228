"""The SQLite providers' one durability setting, and acknowledged writes surviving a SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import overcast
from overcast.errors import ConfigError
from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore
from overcast.providers.local.sqlite_queue import SQLiteQueue, SQLiteTopic

_FULL, _NORMAL = 2, 1  # what PRAGMA synchronous answers

# A child that writes without end, printing a line once each write has returned.
_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import overcast

    kv_url, queue_url, face = sys.argv[1:4]
    kv, queue = overcast.open_kv(kv_url), overcast.open_queue(queue_url)

    def done(what, i):
        sys.stdout.write(f"{what} {i}\\n")
        sys.stdout.flush()

    async def writes():
        i = 0
        while True:
            await kv.put(f"k{i}", {"n": i})
            done("kv", i)
            await queue.send({"n": i})
            done("queue", i)
            i += 1

    if face == "async":
        asyncio.run(writes())
    i = 0
    while True:
        kv.sync.put(f"k{i}", {"n": i})
        done("kv", i)
        queue.sync.send({"n": i})
        done("queue", i)
        i += 1
    """
)


def _kv_synchronous(store: SQLiteKeyValueStore) -> int:
    return int(store._conn().execute("PRAGMA synchronous").fetchone()[0])


def _queue_synchronous(queue: SQLiteQueue | SQLiteTopic) -> int:
    with queue._db.lock:
        return int(queue._db.get().execute("PRAGMA synchronous").fetchone()[0])


def test_every_sqlite_file_syncs_each_commit_by_default(tmp_path: Path) -> None:
    kv = SQLiteKeyValueStore(f"sqlite:///{tmp_path}/kv.db")
    queue = SQLiteQueue(f"sqlite:///{tmp_path}/q.db")
    topic = SQLiteTopic(f"sqlite:///{tmp_path}/t.db")
    assert (kv._file.synchronous, queue._db.file.synchronous, topic._db.file.synchronous) == ("full",) * 3
    assert _kv_synchronous(kv) == _FULL
    assert _queue_synchronous(queue) == _FULL
    assert _queue_synchronous(topic.subscription("audit")) == _FULL  # a subscription shares the topic's file
    for store in (kv, queue, topic):
        store.close()


def test_synchronous_normal_is_one_url_option_for_both(tmp_path: Path) -> None:
    kv = SQLiteKeyValueStore(f"sqlite:///{tmp_path}/kv.db?synchronous=NORMAL")
    queue = SQLiteQueue(f"sqlite:///{tmp_path}/q.db?synchronous=normal")
    assert _kv_synchronous(kv) == _NORMAL
    assert _queue_synchronous(queue) == _NORMAL
    assert _queue_synchronous(queue.dead_letters()) == _NORMAL
    kv.close()
    queue.close()


@pytest.mark.parametrize("opener", [overcast.open_kv, overcast.open_queue, overcast.open_topic])
def test_another_synchronous_value_is_refused_naming_it(tmp_path: Path, opener: object) -> None:
    with pytest.raises(ConfigError) as caught:
        opener(f"sqlite:///{tmp_path}/x.db?synchronous=off", name="jobs")  # type: ignore[operator]
    assert str(caught.value) == (
        f"jobs: option synchronous must be 'full' or 'normal', got 'off' in sqlite:///{tmp_path}/x.db?synchronous=off"
    )


def _acknowledged(lines: str) -> dict[str, set[int]]:
    """The writes the child reported done: complete lines only (the last may be cut)."""
    found: dict[str, set[int]] = {"kv": set(), "queue": set()}
    for line in lines.split("\n")[:-1]:
        what, n = line.split()
        found[what].add(int(n))
    return found


def _kill_after(child: subprocess.Popen[str], acks: int) -> str:
    """Read the child's acknowledgements until ``acks`` lines, then SIGKILL it mid-write."""
    assert child.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < acks:
        line = child.stdout.readline()
        assert line, f"the writer ended early: {child.stderr.read() if child.stderr else ''}"
        assert time.monotonic() < deadline, "the writer is too slow"
        seen.append(line)
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()  # what it acknowledged between the last read and the kill
    assert child.wait(timeout=30) == -signal.SIGKILL
    return "".join(seen) + rest


@pytest.mark.parametrize(
    ("face", "query"), [("sync", ""), ("async", ""), ("sync", "?synchronous=normal")], ids=["sync", "async", "normal"]
)
def test_acknowledged_writes_survive_a_sigkill(tmp_path: Path, face: str, query: str) -> None:
    kv_url, queue_url = f"sqlite:///{tmp_path}/kv.db{query}", f"sqlite:///{tmp_path}/q.db{query}"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, kv_url, queue_url, face],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked = _acknowledged(_kill_after(child, 400))
    assert len(acked["kv"]) >= 200 and len(acked["queue"]) >= 199

    kv = SQLiteKeyValueStore(kv_url)
    found = kv.sync.get_many([f"k{n}" for n in acked["kv"]])
    assert sorted(int(key[1:]) for key in found) == sorted(acked["kv"])
    assert all(item.value == {"n": int(key[1:])} for key, item in found.items())

    queue = SQLiteQueue(queue_url)
    received: set[int] = set()
    while batch := queue.sync.receive(max_messages=10):
        received.update(message.body["n"] for message in batch)
    assert acked["queue"] <= received
    assert received <= acked["queue"] | {max(acked["kv"])}  # at most the send the kill interrupted
    kv.close()
    queue.close()
    with sqlite3.connect(tmp_path / "kv.db") as raw:  # the file is whole after the crash
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_forked_child_sends_on_a_connection_of_its_own(tmp_path: Path) -> None:
    queue = SQLiteQueue(f"sqlite:///{tmp_path}/q.db")
    queue.sync.send("parent")
    inherited = queue._db.get()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            queue.sync.send("child")
            code = 0 if queue._db.get() is not inherited else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert queue._db.get() is inherited  # the parent's connection is untouched
    assert sorted(m.body for m in queue.sync.receive(max_messages=10)) == ["child", "parent"]
    queue.close()
