"""Run one Overcast operation on an open store, after whatever it needs set up, and return
the requests it alone sent (``take`` empties the recorder: once before, once after)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

SCAN_PAGE = 25


def doc(size: int) -> dict[str, str]:
    """A document whose JSON text (``{"d":"xx…"}`` as Overcast encodes it) is about ``size`` bytes."""
    return {"d": "x" * max(1, size - 8)}


def key() -> str:
    return uuid.uuid4().hex  # 32 bytes, the rules' typical key


def kv_op(store: Any, op: str, size: int, take: Callable[[], list[Any]]) -> list[Any]:
    kv = store.sync
    k = key()
    if op in ("get", "put_conditional", "delete"):
        version = kv.put(k, doc(size))
    elif op == "scan":
        prefix = uuid.uuid4().hex[:8]
        kv.put_many({f"{prefix}/{i:03}": doc(size) for i in range(SCAN_PAGE)})
    take()
    if op == "get":
        assert kv.get(k) is not None
    elif op == "put":
        kv.put(k, doc(size))
    elif op == "put_absent":
        kv.put(k, doc(size), if_absent=True)
    elif op == "put_conditional":
        kv.put(k, doc(size), if_version=version)
    elif op == "delete":
        assert kv.delete(k)
    elif op == "scan":
        page = kv.page(prefix + "/", limit=SCAN_PAGE)
        assert len(page.items) == SCAN_PAGE
    return take()


def bucket_op(store: Any, op: str, size: int, take: Callable[[], list[Any]]) -> list[Any]:
    bucket = store.sync
    k = key()
    if op in ("get", "head", "delete", "list"):
        bucket.put(k, b"x" * size)
    take()
    if op == "put":
        bucket.put(k, b"x" * size)
    elif op == "get":
        assert len(bucket.get(k)) == size
    elif op == "head":
        assert bucket.head(k) is not None
    elif op == "delete":
        assert bucket.delete(k)
    elif op == "list":
        assert [info.key for info in bucket.list(k)] == [k]
    return take()


def queue_op(store: Any, op: str, size: int, take: Callable[[], list[Any]]) -> list[Any]:
    queue = store.sync
    if op in ("receive", "ack"):
        queue.send("x" * size)
    messages: list[Any] = []
    if op == "ack":  # a long wait: a pull that times out on the client leaves the message leased
        messages = queue.receive(max_messages=1, wait=10)
        assert messages
    take()
    if op == "send":
        queue.send("x" * size)
    elif op == "receive":
        assert queue.receive(max_messages=1, wait=10)
    elif op == "ack":
        queue.ack(messages[0])
    return take()


def topic_op(store: Any, op: str, size: int, take: Callable[[], list[Any]]) -> list[Any]:
    take()
    store.sync.publish("x" * size)
    return take()


DRIVERS = {"kv": kv_op, "bucket": bucket_op, "queue": queue_op, "topic": topic_op}
