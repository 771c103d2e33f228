"""The Azure Table and Blob providers against the raw Azure SDKs on the same Azurite, in one run.

Starts Azurite (through the tests' own starter). Each row does the same work both sides:

- Table get / put: ``TableClient.get_entity`` / ``upsert_entity`` (REPLACE) of one small
  document, against ``kv.sync.get`` / ``kv.sync.put``;
- Blob put / get: ``BlobClient.upload_blob(overwrite=True)`` / ``download_blob().readall()``
  of 4 KiB, against ``bucket.sync.put`` / ``bucket.sync.get``;
- the async face (the sync SDK offloaded to a worker thread) against the SDK's own
  ``.aio`` clients on the same loop: the measurement behind the choice of sync SDK + offload.

Goal: the blocking rows within 1.05x of the raw SDK.

    .venv/bin/python benchmarks/azure_providers.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, per_op_us, per_op_us_async, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from azure.data.tables import TableServiceClient, UpdateMode
from azure.data.tables.aio import TableServiceClient as AsyncTableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

import overcast
from servers.azure import start_azurite

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
DATA = os.urandom(4096)


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
        kv.sync.create()
        bucket.sync.create()
        kv.sync.put("k", DOC)
        bucket.sync.put("k", DATA)

        table = TableServiceClient.from_connection_string(conn).get_table_client(name)
        container = BlobServiceClient.from_connection_string(conn).get_container_client(name)
        raw_blob = container.get_blob_client("raw/k")
        import json

        entity = {"PartitionKey": "raw", "RowKey": "k", "v": json.dumps(DOC, separators=(",", ":"))}
        table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        raw_blob.upload_blob(DATA, overwrite=True)

        atable_service = AsyncTableServiceClient.from_connection_string(conn)
        ablob_service = AsyncBlobServiceClient.from_connection_string(conn)
        atable = atable_service.get_table_client(name)
        ablob = ablob_service.get_blob_client(name, "raw/k")

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
            return bytes(await (await ablob.download_blob()).readall())

        rows = [
            ("Table get (sync)", per_op_us(n, lambda: kv.sync.get("k")), per_op_us(n, raw_get)),
            ("Table put (sync)", per_op_us(n, lambda: kv.sync.put("k", DOC)), per_op_us(n, raw_put)),
            (
                "Blob put 4 KiB (sync)",
                per_op_us(n, lambda: bucket.sync.put("k", DATA)),
                per_op_us(n, lambda: raw_blob.upload_blob(DATA, overwrite=True, max_concurrency=1)),
            ),
            (
                "Blob get 4 KiB (sync)",
                per_op_us(n, lambda: bucket.sync.get("k")),
                per_op_us(n, lambda: raw_blob.download_blob(max_concurrency=1).readall()),
            ),
            (
                "Table get (async: offload vs .aio)",
                per_op_us_async(loop, n, lambda: kv.get("k")),
                per_op_us_async(loop, n, araw_get),
            ),
            (
                "Table put (async: offload vs .aio)",
                per_op_us_async(loop, n, lambda: kv.put("k", DOC)),
                per_op_us_async(loop, n, araw_put),
            ),
            (
                "Blob get (async: offload vs .aio)",
                per_op_us_async(loop, n, lambda: bucket.get("k")),
                per_op_us_async(loop, n, araw_blob_get),
            ),
        ]
        results = [(label, Result(label, "us"), Result(label, "us"), ours, base) for label, ours, base in rows]
        for _label, _r_ours, _r_base, ours, base in results:
            ours()  # warm connections and caches
            base()
        interleave(
            rounds, *[(r, f) for _l, r_ours, r_base, ours, base in results for r, f in ((r_ours, ours), (r_base, base))]
        )
        report(
            f"Azure providers vs raw Azure SDKs on Azurite ({n} ops x {rounds} rounds, median per op)",
            [
                (label, r_ours, r_base, "<= 1.05x" if label.endswith("(sync)") else "report")
                for label, r_ours, r_base, _o, _b in results
            ],
        )

        async def close_aio() -> None:
            await atable.close()
            await ablob.close()
            await atable_service.close()
            await ablob_service.close()

        loop.run_until_complete(close_aio())
    finally:
        loop.close()
        server.stop()


if __name__ == "__main__":
    main()
