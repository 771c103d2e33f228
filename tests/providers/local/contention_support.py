"""Workers for tests/providers/local/test_contention.py: each runs in its own OS process
(``multiprocessing`` with ``spawn``) and reports every call's outcome to the parent.

An outcome is ``"won"``, ``"conflict"`` or ``"error: <exception>"``; the parent checks that
each race had exactly one winner and no error. Rounds are kept in step with a barrier, so
the processes really race: all of them start the same call within microseconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Awaitable
from typing import Any

from overcast.errors import Conflict
from overcast.providers.local.files import FileBlobStore
from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore
from overcast.providers.local.sqlite_queue import SQLiteQueue

BARRIER_SECONDS = 120.0


def long_profile() -> bool:
    """Whether the long profile was asked for (``OVERCAST_LONG=1``; ``pytest --long`` sets it)."""
    return os.environ.get("OVERCAST_LONG", "").strip().lower() in ("1", "true", "yes")


class _Faces:
    """Calls through the async face in even-numbered processes and the blocking face in odd
    ones: they take different paths to the write lock (a try on the loop, then a thread)."""

    def __init__(self, index: int) -> None:
        self.loop = asyncio.new_event_loop() if index % 2 == 0 else None

    def call(self, store: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """``store.METHOD(*args, **kwargs)`` through this process's face."""
        if self.loop is None:
            return getattr(store.sync, method)(*args, **kwargs)
        coro: Awaitable[Any] = getattr(store, method)(*args, **kwargs)
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def outcome(self, store: Any, method: str, *args: Any, **kwargs: Any) -> str:
        """What one racing call ended in: ``won`` (``lost``: a delete that found nothing),
        ``conflict``, or ``error: ...``."""
        try:
            result = self.call(store, method, *args, **kwargs)
        except Conflict:
            return "conflict"
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"
        return "lost" if result is False else "won"


def kv_worker(base: str, index: int, rounds: int, fresh: bool, barrier: Any, results: Any) -> None:
    """Race on one key each round: ``if_absent`` on a new key, then ``if_version`` on a shared one.

    ``fresh``: each round a new file, so the first use (creating the file, WAL mode, the
    table) races too; otherwise one file, closed every ten rounds to reconnect under load.
    """
    faces = _Faces(index)
    store: SQLiteKeyValueStore | None = None
    for r in range(rounds):
        if fresh or store is None or r % 10 == 0:
            if store is not None:
                store.close()
            store = SQLiteKeyValueStore(f"sqlite:///{base}-{r}.db" if fresh else f"sqlite:///{base}.db")
        kv = store
        key, value = f"k{r}", {"round": r, "process": index}
        barrier.wait(BARRIER_SECONDS)
        results.put((r, "if_absent", index, faces.outcome(kv, "put", key, value, if_absent=True)))
        barrier.wait(BARRIER_SECONDS)
        item = kv.sync.get(key)
        barrier.wait(BARRIER_SECONDS)  # every process holds the same version before the race
        version = item.version if item is not None else "none"
        results.put((r, "if_version", index, faces.outcome(kv, "put", key, value, if_version=version)))
        barrier.wait(BARRIER_SECONDS)
        item = kv.sync.get(key)
        barrier.wait(BARRIER_SECONDS)
        version = item.version if item is not None else "none"
        results.put((r, "delete_if_version", index, faces.outcome(kv, "delete", key, if_version=version)))
    if store is not None:
        store.close()
    results.put(None)


def queue_receiver(url: str, index: int, done_sending: Any, start: Any, results: Any) -> None:
    """Receive, check the claim, ack; until the senders are done and the queue stays empty.

    Reports every delivery as (message id, index, received at, visibility timeout), so the
    parent can check that no two processes held one message at once.
    """
    faces = _Faces(index)
    queue = SQLiteQueue(url)
    start.wait(BARRIER_SECONDS)
    idle_since: float | None = None
    while True:
        try:
            messages = faces.call(queue, "receive", max_messages=1 + index % 3, visibility_timeout=30.0, wait=0.05)
        except Exception as exc:  # reported: the parent fails the test
            results.put(("error", index, f"receive: {type(exc).__name__}: {exc}", None))
            continue
        assert isinstance(messages, list)
        now = time.time()
        for message in messages:
            results.put(("delivery", message.body["id"], index, now))
            try:
                faces.call(queue, "ack", message)
            except Exception as exc:
                results.put(("error", index, f"ack: {type(exc).__name__}: {exc}", None))
        if messages:
            idle_since = None
        elif done_sending.is_set():
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 0.5:
                break
    queue.close()
    results.put(("done", index, None, None))


def queue_sender(url: str, index: int, count: int, start: Any, results: Any) -> None:
    """Send ``count`` numbered messages while the receivers receive."""
    queue = SQLiteQueue(url)
    start.wait(BARRIER_SECONDS)
    for n in range(count):
        body_id = f"{index}-{n}"
        try:
            queue.sync.send({"id": body_id})
        except Exception as exc:
            results.put(("error", index, f"send: {type(exc).__name__}: {exc}", None))
            continue
        results.put(("sent", body_id, index, None))
    queue.close()
    results.put(("done", index, None, None))


def blob_body(round_: int, index: int) -> bytes:
    """An object that tells whether it is whole: a JSON header naming a payload and its hash."""
    payload = os.urandom(1000 + 97 * index + round_ % 50).hex()
    header = {"round": round_, "process": index, "sha256": hashlib.sha256(payload.encode()).hexdigest()}
    return json.dumps(header).encode() + b"\n" + payload.encode()


def blob_whole(data: bytes) -> bool:
    """Whether ``data`` is an object :func:`blob_body` wrote, whole (not torn or mixed)."""
    head, _, payload = data.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("sha256") == hashlib.sha256(payload).hexdigest()


def files_worker(root: str, index: int, rounds: int, barrier: Any, results: Any) -> None:
    """Race each round on a create (``if_absent``), a replace (``if_etag``) and a delete of one
    key, reading it back whole in between; then write and delete a key of its own in the same
    folder, five times, so that folders are removed and made again under one another's feet."""
    faces = _Faces(index)
    store = FileBlobStore(f"file://{root}")
    for r in range(rounds):
        key, body = f"r{r % 7}/shared", blob_body(r, index)
        barrier.wait(BARRIER_SECONDS)
        results.put((r, "if_absent", index, faces.outcome(store, "put", key, body, if_absent=True)))
        barrier.wait(BARRIER_SECONDS)
        info = store.sync.head(key)
        barrier.wait(BARRIER_SECONDS)
        etag = info.etag if info is not None else "none"
        mine = f"r{r % 7}/p{index}"
        body = blob_body(r, index)  # new bytes: rewriting the winner's own bytes would keep its ETag
        results.put((r, "if_etag", index, faces.outcome(store, "put", key, body, if_etag=etag)))
        data = store.sync.get(key)
        results.put((r, "whole", index, "won" if blob_whole(data) else f"error: torn object {data[:80]!r}"))
        barrier.wait(BARRIER_SECONDS)
        results.put((r, "delete", index, faces.outcome(store, "delete", key)))
        for _ in range(5):  # the folder empties (and is removed) and fills again, under one another
            results.put((r, "own", index, faces.outcome(store, "put", mine, body)))
            results.put((r, "own_delete", index, faces.outcome(store, "delete", mine)))
    results.put(None)


def queue_first_use_worker(base: str, index: int, rounds: int, barrier: Any, results: Any) -> None:
    """Each round a new queue file: every process sends one message at once (opening the
    file, switching it to WAL and making the schema race), then claims one; reports the id
    it claimed as ``delivered:<id>``."""
    faces = _Faces(index)
    for r in range(rounds):
        queue = SQLiteQueue(f"sqlite:///{base}-{r}.db")
        barrier.wait(BARRIER_SECONDS)
        results.put((r, "send", index, faces.outcome(queue, "send", {"round": r, "process": index})))
        barrier.wait(BARRIER_SECONDS)
        try:
            got = faces.call(queue, "receive", max_messages=1, visibility_timeout=60.0)
            claimed = f"delivered:{got[0].id}" if len(got) == 1 else f"error: claimed {len(got)} messages"
        except Exception as exc:
            claimed = f"error: {type(exc).__name__}: {exc}"
        results.put((r, "receive", index, claimed))
        queue.close()
    results.put(None)
