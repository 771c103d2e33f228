"""The AWS providers against raw botocore doing the same work on the same moto server, in one run.

DynamoDB get and put of a small document (raw: the same GetItem / PutItem with the same
item), S3 put and get of 1 KB and 8 MB (raw: PutObject / GetObject). Overcast's synchronous
face and its async face (one ``asyncio.run`` per round, the hook offloaded to a thread) are
both measured. Goal: within 1.05x of raw botocore.

moto answers in about a millisecond, much faster than DynamoDB or S3 do, so these ratios
are the worst Overcast will show: against the real services the same overhead is a
smaller share.

    .venv/bin/python benchmarks/aws_providers.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import overcast  # noqa: E402
from servers.aws import start_moto  # noqa: E402


def per_op(n: int, op: Callable[[], Any], scale: float = 1e6) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            op()
        return (time.perf_counter() - start) / n * scale

    return run


def per_op_async(n: int, op: Callable[[], Awaitable[Any]], scale: float = 1e6) -> Callable[[], float]:
    async def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await op()
        return (time.perf_counter() - start) / n * scale

    return lambda: asyncio.run(loop())


def main() -> None:
    args = arguments(__doc__ or "")
    n = 100 if args.quick else 600
    n_big = 3 if args.quick else 12
    rounds = 3 if args.quick else 7
    server = start_moto()
    try:
        server.apply_env()
        import botocore.session

        session = botocore.session.get_session()
        ddb = session.create_client("dynamodb", region_name="us-east-1")
        s3 = session.create_client("s3", region_name="us-east-1")
        kv = overcast.open_kv("dynamodb://bench-table")
        bucket = overcast.open_bucket("s3://bench-bucket/p")
        kv.sync.create()
        bucket.sync.create()
        doc = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
        import json

        raw_item = {
            "pk": {"S": "kv"},
            "sk": {"S": "raw"},
            "doc": {"S": json.dumps(doc, separators=(",", ":"))},
            "ver": {"S": "v1"},
        }
        kv.sync.put("k", doc)
        ddb.put_item(TableName="bench-table", Item=raw_item)
        small, big = os.urandom(1000), os.urandom(8_000_000)

        def raw_get() -> Any:
            item = ddb.get_item(
                TableName="bench-table", Key={"pk": {"S": "kv"}, "sk": {"S": "raw"}}, ConsistentRead=True
            )["Item"]
            return json.loads(item["doc"]["S"])

        def raw_put() -> None:
            ddb.put_item(TableName="bench-table", Item=raw_item)

        def s3_put(data: bytes) -> Callable[[], Any]:
            return lambda: s3.put_object(Bucket="bench-bucket", Key="raw", Body=data)

        def s3_get() -> bytes:
            return bytes(s3.get_object(Bucket="bench-bucket", Key="raw")["Body"].read())

        rows: list[tuple[str, Result, Result, str]] = []
        runs = []

        def pair(label: str, ours: Callable[[], float], theirs: Callable[[], float], unit: str) -> None:
            a, b = Result(label, unit), Result("raw " + label, unit)
            rows.append((label, a, b, "<= 1.05x"))
            runs.extend([(a, ours), (b, theirs)])

        pair("dynamodb get (sync)", per_op(n, lambda: kv.sync.get("k")), per_op(n, raw_get), "us")
        pair("dynamodb put (sync)", per_op(n, lambda: kv.sync.put("k", doc)), per_op(n, raw_put), "us")
        pair("dynamodb get (async)", per_op_async(n, lambda: kv.get("k")), per_op(n, raw_get), "us")
        pair("dynamodb put (async)", per_op_async(n, lambda: kv.put("k", doc)), per_op(n, raw_put), "us")
        pair("s3 put 1 KB (sync)", per_op(n, lambda: bucket.sync.put("small", small)), per_op(n, s3_put(small)), "us")
        pair("s3 get 1 KB (sync)", per_op(n, lambda: bucket.sync.get("small")), per_op(n, s3_get), "us")
        pair("s3 put 1 KB (async)", per_op_async(n, lambda: bucket.put("small", small)), per_op(n, s3_put(small)), "us")
        pair("s3 get 1 KB (async)", per_op_async(n, lambda: bucket.get("small")), per_op(n, s3_get), "us")
        s3.put_object(Bucket="bench-bucket", Key="raw", Body=big)
        bucket.sync.put("big", big)
        pair(
            "s3 put 8 MB (sync)",
            per_op(n_big, lambda: bucket.sync.put("big", big), 1e3),
            per_op(n_big, s3_put(big), 1e3),
            "ms",
        )
        pair("s3 get 8 MB (sync)", per_op(n_big, lambda: bucket.sync.get("big"), 1e3), per_op(n_big, s3_get, 1e3), "ms")
        pair(
            "s3 get 8 MB (async)",
            per_op_async(n_big, lambda: bucket.get("big"), 1e3),
            per_op(n_big, s3_get, 1e3),
            "ms",
        )
        # The small-object rows measured 1 KB gets of "raw"; put it back before the big rounds.
        s3.put_object(Bucket="bench-bucket", Key="raw", Body=small)
        interleave(rounds, *runs[:16])
        s3.put_object(Bucket="bench-bucket", Key="raw", Body=big)
        interleave(rounds, *runs[16:])
        report(
            f"AWS providers vs raw botocore on moto ({n} ops, 8 MB: {n_big}; median of {rounds} rounds, time per op)",
            rows,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
