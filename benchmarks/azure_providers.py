"""The Azure Table, Blob and Queue providers against the raw Azure SDKs on the same Azurite, in one run.

Starts Azurite (through the tests' own starter). Each row does the same work both sides:

- Table get / put: ``TableClient.get_entity`` / ``upsert_entity`` (REPLACE) of one small
  document, against ``kv.sync.get`` / ``kv.sync.put``;
- Blob put / get: ``BlobClient.upload_blob(overwrite=True)`` / ``download_blob().readall()``
  of 4 KiB, against ``bucket.sync.put`` / ``bucket.sync.get``;
- Queue send: ``QueueClient.send_message`` of the same text, against ``queue.sync.send``;
- the same on the async faces (``await kv.get(...)``, ...) against the SDKs' own ``.aio``
  clients on the same loop (the providers' async faces run on ``.aio`` clients too).

Each sample times the two sides op by op, alternating which goes first, so a busier moment
of the (shared, loaded) machine or of Azurite hits both alike; the figure is the median
of the rounds' per-op means.

Goal: every row within 1.05x of the raw SDK.

    .venv/bin/python benchmarks/azure_providers.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import Result, arguments, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from azure.data.tables import TableServiceClient, UpdateMode
from azure.data.tables.aio import TableServiceClient as AsyncTableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
from azure.storage.queue import QueueServiceClient
from azure.storage.queue.aio import QueueServiceClient as AsyncQueueServiceClient

import overcast
from servers.azure import start_azurite

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
DATA = os.urandom(4096)

Pair = Callable[[], tuple[float, float]]


def paired(n: int, ours: Callable[[], Any], base: Callable[[], Any]) -> Pair:
    """A measurement: microseconds per call of ``ours`` and of ``base``, called in turn ``n`` times each."""

    def run() -> tuple[float, float]:
        spent = [0.0, 0.0]
        clock = time.perf_counter
        for i in range(n):
            order = ((0, ours), (1, base)) if i % 2 == 0 else ((1, base), (0, ours))
            for side, op in order:
                start = clock()
                op()
                spent[side] += clock() - start
        return spent[0] / n * 1e6, spent[1] / n * 1e6

    return run


def apaired(
    loop: asyncio.AbstractEventLoop, n: int, ours: Callable[[], Awaitable[Any]], base: Callable[[], Awaitable[Any]]
) -> Pair:
    """The same for coroutine functions, on ``loop``."""

    async def timed() -> tuple[float, float]:
        spent = [0.0, 0.0]
        clock = time.perf_counter
        for i in range(n):
            order = ((0, ours), (1, base)) if i % 2 == 0 else ((1, base), (0, ours))
            for side, op in order:
                start = clock()
                await op()
                spent[side] += clock() - start
        return spent[0] / n * 1e6, spent[1] / n * 1e6

    return lambda: loop.run_until_complete(timed())


def main() -> None:
    args = arguments(__doc__ or "")
    n = 30 if args.quick else 200
    rounds = 3 if args.quick else 11
    server = start_azurite()
    loop = asyncio.new_event_loop()
    try:
        server.apply_env()
        conn = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
        name = f"bench{uuid.uuid4().hex[:8]}"
        kv = overcast.open_kv(f"azuretables://{name}")
        bucket = overcast.open_bucket(f"azblob://{name}/bench")
        queue = overcast.open_queue(f"azqueue://{name}")
        kv.sync.create()
        bucket.sync.create()
        queue.sync.create()
        kv.sync.put("k", DOC)
        bucket.sync.put("k", DATA)

        table = TableServiceClient.from_connection_string(conn).get_table_client(name)
        container = BlobServiceClient.from_connection_string(conn).get_container_client(name)
        raw_blob = container.get_blob_client("raw/k")
        raw_queue = QueueServiceClient.from_connection_string(conn).get_queue_client(name)
        import json

        from overcast.providers.azure.queues import encode_message

        text = encode_message(uuid.uuid4().hex, json.dumps(DOC, separators=(",", ":")).encode(), {})

        entity = {"PartitionKey": "raw", "RowKey": "k", "v": json.dumps(DOC, separators=(",", ":"))}
        table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        raw_blob.upload_blob(DATA, overwrite=True)

        atable_service = AsyncTableServiceClient.from_connection_string(conn)
        ablob_service = AsyncBlobServiceClient.from_connection_string(conn)
        aqueue_service = AsyncQueueServiceClient.from_connection_string(conn)
        atable = atable_service.get_table_client(name)
        ablob = ablob_service.get_blob_client(name, "raw/k")
        aqueue = aqueue_service.get_queue_client(name)

        def raw_get() -> Any:
            found = table.get_entity("raw", "k")
            return json.loads(found["v"])

        def raw_put() -> Any:
            doc = json.dumps(DOC, separators=(",", ":"))
            return table.upsert_entity({"PartitionKey": "raw", "RowKey": "k", "v": doc}, mode=UpdateMode.REPLACE)

        async def araw_get() -> Any:
            found = await atable.get_entity("raw", "k")
            return json.loads(found["v"])

        async def araw_put() -> Any:
            doc = json.dumps(DOC, separators=(",", ":"))
            return await atable.upsert_entity({"PartitionKey": "raw", "RowKey": "k", "v": doc}, mode=UpdateMode.REPLACE)

        async def araw_blob_get() -> bytes:
            return bytes(await (await ablob.download_blob(max_concurrency=1)).readall())

        async def araw_blob_put() -> Any:
            return await ablob.upload_blob(DATA, overwrite=True, max_concurrency=1)

        rows = [
            ("Table get (sync)", paired(n, lambda: kv.sync.get("k"), raw_get)),
            ("Table put (sync)", paired(n, lambda: kv.sync.put("k", DOC), raw_put)),
            (
                "Blob put 4 KiB (sync)",
                paired(
                    n,
                    lambda: bucket.sync.put("k", DATA),
                    lambda: raw_blob.upload_blob(DATA, overwrite=True, max_concurrency=1),
                ),
            ),
            (
                "Blob get 4 KiB (sync)",
                paired(n, lambda: bucket.sync.get("k"), lambda: raw_blob.download_blob(max_concurrency=1).readall()),
            ),
            (
                "Queue send (sync)",
                paired(n, lambda: queue.sync.send(DOC), lambda: raw_queue.send_message(text)),
            ),
            (
                "Table get (async vs .aio)",
                apaired(loop, n, lambda: kv.get("k"), araw_get),
            ),
            (
                "Table put (async vs .aio)",
                apaired(loop, n, lambda: kv.put("k", DOC), araw_put),
            ),
            (
                "Blob put 4 KiB (async vs .aio)",
                apaired(loop, n, lambda: bucket.put("k", DATA), araw_blob_put),
            ),
            (
                "Blob get 4 KiB (async vs .aio)",
                apaired(loop, n, lambda: bucket.get("k"), araw_blob_get),
            ),
            (
                "Queue send (async vs .aio)",
                apaired(loop, n, lambda: queue.send(DOC), lambda: aqueue.send_message(text)),
            ),
        ]
        results = [(label, Result(label, "us"), Result(label, "us"), run) for label, run in rows]
        for _label, _r_ours, _r_base, run in results:
            run()  # warm connections and caches
        for _ in range(rounds):
            for _label, r_ours, r_base, run in results:
                mine, theirs = run()
                r_ours.samples.append(mine)
                r_base.samples.append(theirs)
        report(
            f"Azure providers vs raw Azure SDKs on Azurite ({n} ops x {rounds} rounds, paired, median per op)",
            [(label, r_ours, r_base, "<= 1.05x") for label, r_ours, r_base, _run in results],
        )

        async def close_aio() -> None:
            await atable.close()
            await ablob.close()
            await aqueue.close()
            await atable_service.close()
            await ablob_service.close()
            await aqueue_service.close()

        loop.run_until_complete(close_aio())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())  # closes the providers' .aio clients, as asyncio.run does
        loop.close()
        server.stop()


if __name__ == "__main__":
    main()
