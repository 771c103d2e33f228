"""The async faces of the Azure storage providers on the SDKs' ``.aio`` clients, on Azurite:
one client per event loop (an aiohttp session belongs to its loop), made on first use and
closed when the loop shuts down; and TTL'd versions in Table storage."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

import overcast
from overcast.errors import Conflict
from overcast.providers.azure import _credentials
from overcast.providers.azure.blob import AzureBlobStore
from overcast.providers.azure.queues import AzureStorageQueue
from overcast.providers.azure.tables import AzureTableKeyValueStore
from servers import Server


def _resources() -> tuple[AzureTableKeyValueStore, AzureBlobStore, AzureStorageQueue]:
    name = f"a{uuid.uuid4().hex[:12]}"
    kv = overcast.open_kv(f"azuretables://{name}")
    bucket = overcast.open_bucket(f"azblob://{name}/p")
    queue = overcast.open_queue(f"azqueue://{name}")
    assert isinstance(kv, AzureTableKeyValueStore)
    assert isinstance(bucket, AzureBlobStore)
    assert isinstance(queue, AzureStorageQueue)
    for resource in (kv, bucket, queue):
        resource.sync.create()
    return kv, bucket, queue


def _transport(service: Any) -> Any:
    """The aiohttp transport under an ``.aio`` service client (the SDKs nest it the same way)."""
    return service._client._client._pipeline._transport


async def _round_trip(kv: Any, bucket: Any, queue: Any, n: int) -> list[Any]:
    """Every async operation once; returns the ``.aio`` service clients it ran on."""
    version = await kv.put("k", {"n": n})
    await kv.put("k", {"n": n + 1}, if_version=version)
    item = await kv.get("k")
    assert item is not None and item.value == {"n": n + 1}
    assert [i.key async for i in kv.scan()] == ["k"]
    assert list(await kv.get_many(["k", "nope"])) == ["k"]
    await kv.put_many({"m": {"n": n}})
    assert await kv.delete("m") is True

    info = await bucket.put("o", f"data {n}".encode(), content_type="text/plain")
    assert await bucket.get("o") == f"data {n}".encode()
    assert await bucket.get("o", start=5) == str(n).encode()
    assert (await bucket.head("o")) == info
    assert [o.key async for o in bucket.list()] == ["o"]
    assert b"".join([chunk async for chunk in bucket.stream("o")]) == f"data {n}".encode()

    sent = await queue.send({"n": n})
    (message,) = await queue.receive(wait=5)
    assert message.id == sent and message.body == {"n": n}
    await queue.ack(message)
    return [await _credentials.async_service_client(r.location, s) for r, s in ((kv, "table"), (bucket, "blob"))]


def test_each_event_loop_gets_its_own_clients_closed_with_the_loop(azurite: Server) -> None:
    kv, bucket, queue = _resources()
    first = asyncio.run(_round_trip(kv, bucket, queue, 1))
    # asyncio.run shut the loop down: its clients' aiohttp sessions are closed and forgotten
    assert all(_transport(service).session is None for service in first)
    second = asyncio.run(_round_trip(kv, bucket, queue, 2))  # a new loop: new clients, no "different loop" errors
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert not any(loop.is_closed() for loop in list(_credentials._loops.keys()))
    assert kv.sync.get("k").value == {"n": 3}  # type: ignore[union-attr]  # the blocking face is untouched


def test_a_resource_moves_between_live_loops(azurite: Server) -> None:
    kv, bucket, queue = _resources()
    loop_a, loop_b = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        on_a = loop_a.run_until_complete(_round_trip(kv, bucket, queue, 1))
        on_b = loop_b.run_until_complete(_round_trip(kv, bucket, queue, 2))
        again_a = loop_a.run_until_complete(_round_trip(kv, bucket, queue, 3))
        assert on_a == again_a and all(a is not b for a, b in zip(on_a, on_b, strict=True))
    finally:
        for loop in (loop_a, loop_b):
            loop.run_until_complete(loop.shutdown_asyncgens())  # what asyncio.run does: closes the clients
            loop.close()
    assert all(_transport(service).session is None for service in on_a + on_b)


def test_loops_in_threads_at_once(azurite: Server) -> None:
    kv, _bucket, _queue = _resources()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    async def work(worker: int) -> None:
        for i in range(10):
            version = await kv.put(f"w{worker}", {"i": i})
            item = await kv.get(f"w{worker}")
            assert item is not None and (item.value, item.version) == ({"i": i}, version)

    def run(worker: int) -> None:
        try:
            start.wait()
            asyncio.run(work(worker))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(i.key for i in kv.sync.scan()) == ["w0", "w1", "w2", "w3"]


# -- Table storage: an expired item's version no longer matches ------------------------------


def _stored(store: AzureTableKeyValueStore, key: str) -> bool:
    service = TableServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    return any(e["RowKey"] == key for e in service.get_table_client(store.table_name).list_entities())


def _expire(store: AzureTableKeyValueStore, key: str) -> str:
    version = store.sync.put(key, {"a": 1}, ttl=0.3)
    deadline = time.monotonic() + 10
    while store.sync.get(key) is not None:
        assert time.monotonic() < deadline, "the item did not expire"
        time.sleep(0.05)
    assert _stored(store, key)  # Table storage has no TTL: the entity is still there
    return version


def test_if_version_of_an_expired_item_conflicts_on_both_faces(azurite: Server) -> None:
    kv, _bucket, _queue = _resources()
    version = _expire(kv, "gone")
    with pytest.raises(Conflict, match="expired"):
        kv.sync.put("gone", {"a": 2}, if_version=version)
    with pytest.raises(Conflict, match="expired"):
        kv.sync.delete("gone", if_version=version)

    async def async_face() -> None:
        with pytest.raises(Conflict, match="expired"):
            await kv.put("gone", {"a": 2}, if_version=version)
        with pytest.raises(Conflict, match="expired"):
            await kv.delete("gone", if_version=version)

    asyncio.run(async_face())
    assert kv.sync.get("gone") is None and _stored(kv, "gone")  # nothing was written
    kv.sync.put("gone", {"a": 3}, if_absent=True)  # absent, so if_absent takes it
    assert kv.sync.get("gone").value == {"a": 3}  # type: ignore[union-attr]


def test_versions_of_live_ttl_items_match(azurite: Server) -> None:
    kv, _bucket, _queue = _resources()
    version = kv.sync.put("k", {"a": 1}, ttl=600)
    item = kv.sync.get("k")
    assert item is not None and item.version == version
    assert kv.sync.get_many(["k"])["k"].version == version and next(iter(kv.sync.scan())).version == version
    newer = kv.sync.put("k", {"a": 2}, if_version=version, ttl=600)
    assert asyncio.run(kv.get("k")).version == newer  # type: ignore[union-attr]
    last = asyncio.run(kv.put("k", {"a": 3}, if_version=newer))
    assert last == kv.sync.get("k").version  # type: ignore[union-attr]  # no TTL: the bare ETag
    assert kv.sync.delete("k", if_version=last) is True
    with pytest.raises(Conflict):
        kv.sync.put("k", {"a": 4}, if_version=version)  # an old version, not expired: the ETag moved


def test_async_clients_without_a_connection_string_share_the_loops_aio_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azure.identity.aio import DefaultAzureCredential

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
    location = AzureTableKeyValueStore("azuretables://nocreds?account=myaccount").location

    async def build() -> tuple[Any, Any]:  # building makes no request
        tables = await _credentials.async_service_client(location, "table")
        queues = await _credentials.async_service_client(location, "queue")
        return tables, queues

    tables, queues = asyncio.run(build())
    assert tables.url.startswith("https://myaccount.table.core.windows.net")
    assert queues.url.startswith("https://myaccount.queue.core.windows.net")
    assert isinstance(tables.credential, DefaultAzureCredential) and queues.credential is tables.credential
    again, _ = asyncio.run(build())
    assert again.credential is not tables.credential  # each loop its own (its aiohttp session is the loop's)
