"""The conformance cases of ``_put_if_newer``: a write applied only if its order is higher;
and of ``_put_with_log``: the same write and a change-log entry beside it, both or neither.

Every KV provider runs the first, with the ``put_if_newer`` capability (one call to the
service) or without it (the interface's read + conditional-put fallback): what is stored
must be the same either way. Providers declaring ``put_with_log`` (one atomic call) run the
second. Documents carry their order as a replicated store's envelope does, in
:data:`~overcast.resources.kv.ORDER_FIELD`.
"""

from __future__ import annotations

import asyncio
import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from overcast.errors import Conflict
from overcast.resources.kv import ORDER_FIELD, KeyValueStore, LogEntry

from .base import eventually, requires

__all__ = ["PutIfNewerCases", "PutWithLogCases", "order"]


def order(wall: int, logical: int = 0, origin: str = "a") -> str:
    """An order as a hybrid logical clock writes it (13 + 6 hex digits, ``-``, the origin)."""
    return f"{wall:013x}{logical:06x}-{origin}"


def _doc(at: str, n: int, deleted: bool) -> tuple[dict[str, Any], bytes]:
    value: dict[str, Any] = {ORDER_FIELD: at, "_del": 1} if deleted else {ORDER_FIELD: at, "v": {"n": n}}
    return value, json.dumps(value, separators=(",", ":")).encode()


async def _newer(
    store: KeyValueStore, key: str, at: str, n: int = 0, *, deleted: bool = False, expires_at: datetime | None = None
) -> str | None:
    value, data = _doc(at, n, deleted)
    return await store._put_if_newer(key, value, data, at, expires_at)


async def _order_at(store: KeyValueStore, key: str) -> str | None:
    item = await store.get(key)
    return None if item is None else item.value.get(ORDER_FIELD)


class PutIfNewerCases:
    """Mixed into :class:`~overcast.testing.conformance.KeyValueStoreSuite` (its ``store`` fixture)."""

    async def test_put_if_newer_creates_an_absent_key(self, store: KeyValueStore) -> None:
        version = await _newer(store, "k", order(1000), 1)
        assert isinstance(version, str) and version
        item = await store.get("k")
        assert item is not None and item.value == {ORDER_FIELD: order(1000), "v": {"n": 1}}
        assert item.version == version

    async def test_put_if_newer_newer_wins_older_and_equal_are_refused(self, store: KeyValueStore) -> None:
        assert await _newer(store, "k", order(1000), 1) is not None
        newest = await _newer(store, "k", order(1000, 1), 2)
        assert newest is not None
        assert await _newer(store, "k", order(1000), 3) is None  # older: not applied, not an error
        assert await _newer(store, "k", order(999, 5, "z"), 4) is None
        assert await _newer(store, "k", order(1000, 1), 5) is None  # equal: already there
        item = await store.get("k")
        assert item is not None and (item.value["v"], item.version) == ({"n": 2}, newest)
        assert await _newer(store, "k", order(1001), 6) is not None
        assert await _order_at(store, "k") == order(1001)

    async def test_put_if_newer_compares_by_code_point(self, store: KeyValueStore) -> None:
        # same wall time and counter: the origin decides, by code point ('Z' < 'a'), whatever the locale
        assert await _newer(store, "k", order(7, 0, "abc"), 1) is not None
        assert await _newer(store, "k", order(7, 0, "Zed"), 2) is None
        assert await _newer(store, "k", order(7, 0, "abd"), 3) is not None
        assert await _order_at(store, "k") == order(7, 0, "abd")

    async def test_put_if_newer_orders_tombstones(self, store: KeyValueStore) -> None:
        assert await _newer(store, "k", order(2000), 1) is not None
        assert await _newer(store, "k", order(2001), deleted=True) is not None
        assert await _newer(store, "k", order(2000, 9), 2) is None  # older than the delete: stays deleted
        item = await store.get("k")
        assert item is not None and item.value == {ORDER_FIELD: order(2001), "_del": 1}
        assert await _newer(store, "k", order(2002), 3) is not None
        assert await _order_at(store, "k") == order(2002)

    async def test_put_if_newer_over_documents_written_by_put(self, store: KeyValueStore) -> None:
        await store.put("plain", {"n": 0})  # no order: older than any
        assert await _newer(store, "plain", order(1), 1) is not None
        # a document written by put that carries its order (a replicated store's conditional write)
        await store.put("k", _doc(order(3000), 1, False)[0])
        assert await _newer(store, "k", order(2999), 2) is None
        assert await _newer(store, "k", order(3000), 3) is None
        assert await _newer(store, "k", order(3001), 4) is not None
        item = await store.get("k")
        assert item is not None and item.value["v"] == {"n": 4}

    @requires("ttl")
    async def test_put_if_newer_over_an_expired_item(self, store: KeyValueStore) -> None:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        assert await _newer(store, "k", order(5000), 1, expires_at=soon) is not None

        async def gone() -> bool:
            return await store.get("k") is None

        await eventually(gone, what="the item to expire")
        assert await _newer(store, "k", order(10), 2) is not None  # an expired item is absent
        item = await store.get("k")
        assert item is not None and item.value["v"] == {"n": 2} and item.expires_at is None

    async def test_put_if_newer_concurrent_appliers_converge_on_the_highest(self, store: KeyValueStore) -> None:
        orders = [order(4000 + i // 3, i % 3, origin) for i in range(12) for origin in ("a", "b")]
        shuffled = random.sample(list(enumerate(orders)), len(orders))
        outcomes = await asyncio.gather(*(_newer(store, "k", at, n) for n, at in shuffled))
        highest = max(orders)
        applied = dict(zip([at for _, at in shuffled], outcomes, strict=True))
        assert applied[highest] is not None
        item = await store.get("k")
        assert item is not None and item.value[ORDER_FIELD] == highest and item.version == applied[highest]

    def test_put_if_newer_concurrent_threads_converge_on_the_highest(self, store: KeyValueStore) -> None:
        orders = [order(6000 + i, 0, "t") for i in range(16)]
        random.shuffle(orders)

        def apply(at: str) -> str | None:
            value, data = _doc(at, int(at[:13], 16), False)
            return store._put_if_newer_blocking("k", value, data, at, None)

        with ThreadPoolExecutor(8) as pool:
            outcomes = dict(zip(orders, pool.map(apply, orders), strict=True))
        item = store.sync.get("k")
        assert item is not None and item.value[ORDER_FIELD] == max(orders)
        assert item.version == outcomes[max(orders)] and item.value["v"] == {"n": 6015}
        assert apply(min(orders)) is None


LOG = "~oc-log~/"


async def _logged(
    store: KeyValueStore, key: str, at: str, n: int = 0, *, deleted: bool = False, expires_at: datetime | None = None
) -> tuple[str, str] | None:
    """``_put_with_log`` of the document ordered ``at`` and the entry ``{"c": at}`` at LOG + key."""
    value, data = _doc(at, n, deleted)
    mark = {"c": at}
    return await store._put_with_log(
        key, value, data, at, expires_at, LogEntry(LOG + key, mark, json.dumps(mark).encode())
    )


async def _entry(store: KeyValueStore, key: str) -> tuple[str, str] | None:
    """(the order it marks, its version) of the log entry of ``key``, or None."""
    item = await store.get(LOG + key)
    return None if item is None else (item.value["c"], item.version)


class PutWithLogCases:
    """Mixed into :class:`~overcast.testing.conformance.KeyValueStoreSuite` (its ``store`` fixture)."""

    @requires("put_with_log")
    async def test_put_with_log_writes_both(self, store: KeyValueStore) -> None:
        written = await _logged(store, "k", order(1000), 1)
        assert written is not None
        version, entry = written
        item = await store.get("k")
        assert item is not None and item.value == {ORDER_FIELD: order(1000), "v": {"n": 1}}
        assert item.version == version and item.expires_at is None
        log = await store.get(LOG + "k")
        assert log is not None and log.value == {"c": order(1000)} and log.version == entry and log.expires_at is None
        assert [i.key async for i in store.scan(LOG)] == [LOG + "k"]  # where the replicator looks

    @requires("put_with_log")
    async def test_put_with_log_refused_writes_neither(self, store: KeyValueStore) -> None:
        written = await _logged(store, "k", order(1000, 1), 1)
        assert written is not None
        assert await store.delete(LOG + "k", if_version=written[1])  # shipped: the replicator drops it
        assert await _logged(store, "k", order(1000), 2) is None  # older: nothing written, not an error
        assert await _logged(store, "k", order(1000, 1), 3) is None  # equal: already there
        assert await store.get(LOG + "k") is None  # no entry for a refused write
        item = await store.get("k")
        assert item is not None and (item.value["v"], item.version) == ({"n": 1}, written[0])

    @requires("put_with_log")
    async def test_put_with_log_newer_replaces_document_and_entry(self, store: KeyValueStore) -> None:
        first = await _logged(store, "k", order(2000), 1)
        second = await _logged(store, "k", order(2001), 2)
        assert first is not None and second is not None and first[1] != second[1]
        assert await _entry(store, "k") == (order(2001), second[1])
        with pytest.raises(Conflict):  # the first write's entry is gone: dropping it keeps the newer mark
            await store.delete(LOG + "k", if_version=first[1])
        assert await _entry(store, "k") == (order(2001), second[1])
        item = await store.get("k")
        assert item is not None and item.value["v"] == {"n": 2} and item.version == second[0]

    @requires("put_with_log")
    async def test_put_with_log_orders_tombstones_and_documents_written_by_put(self, store: KeyValueStore) -> None:
        await store.put("k", _doc(order(3000), 1, False)[0])  # its order inside, no log entry
        assert await _logged(store, "k", order(2999), 2) is None
        assert await store.get(LOG + "k") is None
        assert await _logged(store, "k", order(3001), deleted=True) is not None
        assert await _logged(store, "k", order(3000, 5), 3) is None  # older than the delete
        item = await store.get("k")
        assert item is not None and item.value == {ORDER_FIELD: order(3001), "_del": 1}
        entry = await _entry(store, "k")
        assert entry is not None and entry[0] == order(3001)

    @requires("put_with_log", "ttl")
    async def test_put_with_log_over_an_expired_item(self, store: KeyValueStore) -> None:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        assert await _logged(store, "k", order(5000), 1, expires_at=soon) is not None

        async def gone() -> bool:
            return await store.get("k") is None

        await eventually(gone, what="the item to expire")
        entry = await _entry(store, "k")  # the entry has no expiry: it outlives the document
        assert entry is not None and entry[0] == order(5000)
        written = await _logged(store, "k", order(10), 2)  # an expired item is absent
        assert written is not None and await _entry(store, "k") == (order(10), written[1])

    @requires("put_with_log")
    async def test_put_with_log_concurrent_writers_leave_the_highest_and_its_entry(self, store: KeyValueStore) -> None:
        orders = [order(4000 + i // 3, i % 3, origin) for i in range(12) for origin in ("a", "b")]
        shuffled = random.sample(list(enumerate(orders)), len(orders))
        outcomes = await asyncio.gather(*(_logged(store, "k", at, n) for n, at in shuffled))
        applied = dict(zip([at for _, at in shuffled], outcomes, strict=True))
        highest = max(orders)
        won = applied[highest]
        assert won is not None
        item = await store.get("k")
        assert item is not None and item.value[ORDER_FIELD] == highest and item.version == won[0]
        # the entry is the last applied write's, which is the highest's: an entry only lands with its document
        assert await _entry(store, "k") == (highest, won[1])

    @requires("put_with_log")
    def test_put_with_log_blocking_face(self, store: KeyValueStore) -> None:
        value, data = _doc(order(6000), 1, False)
        mark = {"c": order(6000)}
        log = LogEntry(LOG + "k", mark, json.dumps(mark).encode())
        written = store._put_with_log_blocking("k", value, data, order(6000), None, log)
        assert written is not None
        entry = store.sync.get(LOG + "k")
        assert entry is not None and entry.value == mark and entry.version == written[1]
        document = store.sync.get("k")
        assert document is not None and document.version == written[0]
        assert store._put_with_log_blocking("k", value, data, order(6000), None, log) is None
