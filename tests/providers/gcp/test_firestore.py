"""What is particular to the Firestore KV store, on Google's Firestore emulator with the real
client: the document layout other tools see, id-range scans, batching past Firestore's 500
writes, preconditions against a writer that bypasses Overcast, and errors."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

import overcast
from overcast.errors import ConfigError, Conflict, InvalidArgument
from overcast.providers.gcp.firestore import FirestoreKeyValueStore
from overcast.providers.gcp.firestore import _client as firestore_client

pytestmark = pytest.mark.usefixtures("firestore_emulator")


def _store(**options: str) -> FirestoreKeyValueStore:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    store = overcast.open_kv(f"firestore://kv-{uuid.uuid4().hex[:10]}" + (f"?{query}" if query else ""))
    assert isinstance(store, FirestoreKeyValueStore)
    return store


def _raw(store: FirestoreKeyValueStore) -> Any:
    return firestore_client(store.project, store.database, store.timeout).collection(store.collection_id)


def test_document_layout_seen_by_the_raw_client() -> None:
    store = _store()
    version = store.sync.put("users/ü 1", {"name": "Zoë", "nested": [[1, 2], {"a": None}]}, ttl=600)
    docs = {doc.id: doc.to_dict() for doc in _raw(store).stream()}
    assert list(docs) == ["kusers~2F~C3~BC~201"]
    fields = docs["kusers~2F~C3~BC~201"]
    assert fields["v"] == version and fields["d"] == '{"name":"Zoë","nested":[[1,2],{"a":null}]}'
    assert isinstance(fields["x"], datetime) and fields["x"] > datetime.now(UTC)


def test_reserved_document_ids_are_fine_keys() -> None:
    store = _store()
    for key in (".", "..", "__name__", "a/b", "~"):
        store.sync.put(key, {"k": key})
        item = store.sync.get(key)
        assert item is not None and item.value == {"k": key}
    assert sorted(item.key for item in store.sync.scan()) == sorted([".", "..", "__name__", "a/b", "~"])


def test_scan_reads_only_the_prefix_range() -> None:
    store = _store()
    store.sync.put_many({"a": {}, "ab": {}, "ab/c": {}, "ab~": {}, "abd": {}, "b": {}})
    assert sorted(item.key for item in store.sync.scan("ab")) == ["ab", "ab/c", "abd", "ab~"]
    assert sorted(item.key for item in store.sync.scan("ab/")) == ["ab/c"]
    page = store.sync.page("ab", limit=2)
    assert len(page.items) == 2 and page.cursor is not None
    rest = store.sync.page("ab", limit=10, cursor=page.cursor)
    assert len(rest.items) == 2 and rest.cursor is None
    # the query is a document-id range, so it reads only what the prefix covers
    from google.cloud.firestore import FieldFilter

    query = store.collection.where(filter=FieldFilter("__name__", ">=", store.collection.document("kab")))
    assert len(list(query.stream())) == 5


def test_put_many_past_the_batch_limit() -> None:
    store = _store()
    items = {f"k{i:04}": {"i": i} for i in range(1203)}
    versions = store.sync.put_many(items)
    assert len(set(versions.values())) == 1203
    found = store.sync.get_many(list(items))
    assert len(found) == 1203 and found["k1202"].version == versions["k1202"]
    assert sum(1 for _ in store.sync.scan("k1")) == 203


def test_a_write_around_overcast_makes_if_version_conflict() -> None:
    store = _store()
    version = store.sync.put("k", {"n": 1})
    _raw(store).document("kk").update({"d": '{"n":2}'})  # same version field, new update time
    # the version field still matches, but the precondition is on the update time it was read at
    item = store.sync.get("k")
    assert item is not None and item.value == {"n": 2} and item.version == version
    store.sync.put("k", {"n": 3}, if_version=version)
    with pytest.raises(Conflict) as info:
        store.sync.put("k", {"n": 4}, if_version=version)
    assert "'k'" in str(info.value) and version in str(info.value)


def test_if_absent_replaces_an_expired_document() -> None:
    store = _store()
    _raw(store).document("kold").set({"d": "{}", "v": "v0", "x": datetime(2000, 1, 1, tzinfo=UTC)})
    assert store.sync.get("old") is None
    store.sync.put("old", {"fresh": True}, if_absent=True)
    item = store.sync.get("old")
    assert item is not None and item.value == {"fresh": True} and item.expires_at is None
    assert store.sync.delete("old", if_version=item.version)
    assert not store.sync.delete("old")


def test_limits_and_bad_urls() -> None:
    store = _store()
    with pytest.raises(InvalidArgument) as info:
        store.sync.put("k" * 499, {})
    assert "498" in str(info.value)
    for bad in ("firestore://a/b", "firestore://__x__", "firestore://.."):
        with pytest.raises(ConfigError):
            overcast.open_kv(bad)


class _NoWorkerThreads(ThreadPoolExecutor):
    """A loop's default executor that refuses work: an async call that hops to a thread fails."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async Firestore call went to a worker thread")


def _strict_loop(errors: list[dict[str, Any]]) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(_NoWorkerThreads())
    loop.set_exception_handler(lambda _, context: errors.append(context))


def test_async_face_on_two_event_loops_in_sequence() -> None:
    from google.cloud.firestore import AsyncClient

    store = _store()
    clients: list[Any] = []
    errors: list[dict[str, Any]] = []

    async def first() -> str:
        _strict_loop(errors)
        clients.append(store.async_client())
        version = await store.put("a", {"n": 1}, if_absent=True)
        with pytest.raises(Conflict):
            await store.put("a", {"n": 0}, if_absent=True)
        version = await store.put("a", {"n": 2}, if_version=version)
        await store.put_many({"b": {"n": 3}, "c": {"n": 4}}, ttl=600)
        assert [item.key async for item in store.scan()] == ["a", "b", "c"]
        item = await store.get("a")
        assert item is not None and item.value == {"n": 2}
        return version

    async def second(version: str) -> None:
        _strict_loop(errors)
        clients.append(store.async_client())
        item = await store.get("a")
        assert item is not None and item.version == version
        with pytest.raises(Conflict):
            await store.delete("a", if_version="stale")
        assert await store.delete("a", if_version=version)
        found = await store.get_many(["a", "b", "c"])
        assert sorted(found) == ["b", "c"] and found["c"].expires_at is not None
        page = await store.page(limit=1)
        assert [i.key for i in page.items] == ["b"] and page.cursor == "b"
        assert await store.get("a") is None

    version = asyncio.run(first())
    item = store.sync.get("a")  # the blocking face keeps the sync client, between the loops too
    assert item is not None and item.version == version
    asyncio.run(second(version))
    # one AsyncClient per loop: the first one's gRPC channel belongs to a closed loop
    assert all(isinstance(client, AsyncClient) for client in clients)
    assert clients[0] is not clients[1]
    assert errors == []


def test_no_grpc_event_outlives_its_loop() -> None:
    """Many short loops, as ``asyncio.run`` per job makes: a gRPC stream left open by a read
    would get its status after its loop closed, and grpc's poller, shared by every loop, would
    raise "Event loop is closed" on a later loop (AsyncDocumentReference.get leaves it open)."""
    errors: list[dict[str, Any]] = []

    async def job(store: FirestoreKeyValueStore, n: int) -> None:
        # no default executor set: its shutdown would give the stream time to end
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        for i in range(5):
            await store.put(f"k{i}", {"n": n})
            assert await store.get(f"k{i}") is not None
        assert len(await store.get_many(["k1", "k2", "absent"])) == 2
        version = await store.put("c", {"n": n}, if_absent=True)
        assert await store.delete("c", if_version=version)
        assert await store.get("k1") is not None

    for n in range(40):
        asyncio.run(job(_store(), n))
    assert [str(context.get("exception")) for context in errors] == []
