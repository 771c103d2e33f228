"""The AWS providers against raw botocore doing the same work on the same moto server, in one run.

DynamoDB get and put of a small document (raw: the same GetItem / PutItem with the same
item, the document serialized and a version made per put as any caller must), through
the store's default client (the botocore-free one, since credentials are in the
environment) and through ``client=botocore``; S3 put and get of 1 KB and 8 MB (raw: the
same PutObject, with the content type Overcast records on every object, and GetObject).
Overcast's synchronous face and its async face (on one event loop, each hook offloaded
to a thread) are both measured, in blocks alternating with the raw calls: the sync face
against raw calls, the async face against the same raw calls made from the event loop
with ``asyncio.to_thread`` (botocore blocks, so that is how asyncio code calls it; the
thread hop costs both sides alike). Goal: within 1.05x of raw botocore.

Three ratios per row: of the medians of each side's per-round times; the median of the
ratios of adjacent blocks (ours against the raw block run just before or after it); and
of the client process's CPU time per operation (moto runs in another process, so this is
the work botocore and Overcast do, without the waiting that a loaded machine inflates).
On a busy machine the first scatters by ±10-20% from run to run; the others much less.

moto answers in about a millisecond, much faster than DynamoDB or S3 do, so these ratios
are the worst Overcast will show: against the real services the same overhead is a
smaller share.

    .venv/bin/python benchmarks/aws_providers.py [--quick] [--only dynamodb,s3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import Result, interleave, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import overcast
from servers.aws import start_moto

LOOP = asyncio.new_event_loop()


def timed(op: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        op()
    return time.perf_counter() - start


def timed_async(op: Callable[[], Awaitable[Any]], n: int) -> float:
    async def loop() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await op()
        return time.perf_counter() - start

    return LOOP.run_until_complete(loop())


def paired(
    ours: Result,
    theirs: Result,
    n: int,
    run_ours: Callable[[int], float],
    run_theirs: Callable[[int], float],
    scale: float,
    ratios: list[float],
    cpu: list[float],
) -> Callable[[], float]:
    """One round: ``blocks`` alternations of a block of ours and a block of theirs (order
    swapped each time), so a busier moment of the machine weighs on both alike. Each
    block pair's ratio goes to ``ratios``; ``cpu`` adds up the process's CPU seconds and
    operations of ours and of theirs."""
    blocks = min(n, 10)
    size = n // blocks

    def cpu_timed(run_one: Callable[[int], float], slot: int) -> float:
        start = time.process_time()
        elapsed = run_one(size)
        cpu[slot] += time.process_time() - start
        cpu[slot + 2] += size
        return elapsed

    def run() -> float:
        mine = base = 0.0
        for block in range(blocks):
            if block % 2:
                theirs_block = cpu_timed(run_theirs, 1)
                ours_block = cpu_timed(run_ours, 0)
            else:
                ours_block = cpu_timed(run_ours, 0)
                theirs_block = cpu_timed(run_theirs, 1)
            mine += ours_block
            base += theirs_block
            ratios.append(ours_block / theirs_block)
        theirs.samples.append(base / (size * blocks) * scale)
        return mine / (size * blocks) * scale

    return run


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not a measurement")
    parser.add_argument("--only", default="", help="comma-separated row prefixes to run (e.g. 's3')")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    only = tuple(prefix.strip() for prefix in args.only.split(",") if prefix.strip())
    n = 100 if args.quick else 600
    n_big = 4 if args.quick else 20
    rounds = 3 if args.quick else 7
    server = start_moto()
    try:
        server.apply_env()
        import botocore.session

        session = botocore.session.get_session()
        ddb = session.create_client("dynamodb", region_name="us-east-1")
        s3 = session.create_client("s3", region_name="us-east-1")
        kv = overcast.open_kv("dynamodb://bench-table")
        kv_botocore = overcast.open_kv("dynamodb://bench-table?client=botocore")
        assert type(kv.client).__name__ == "LiteDynamoDB", kv.client  # type: ignore[attr-defined]
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
        bucket.sync.put("small", small)  # read by the get rows, whichever rows run

        def raw_get() -> Any:
            item = ddb.get_item(
                TableName="bench-table", Key={"pk": {"S": "kv"}, "sk": {"S": "raw"}}, ConsistentRead=True
            )["Item"]
            return json.loads(item["doc"]["S"])

        def raw_put() -> None:
            item = {**raw_item, "doc": {"S": json.dumps(doc, separators=(",", ":"))}, "ver": {"S": uuid.uuid4().hex}}
            ddb.put_item(TableName="bench-table", Item=item)

        def s3_put(data: bytes) -> Callable[[], Any]:
            return lambda: s3.put_object(
                Bucket="bench-bucket", Key="raw", Body=data, ContentType="application/octet-stream"
            )

        def s3_get() -> bytes:
            return bytes(s3.get_object(Bucket="bench-bucket", Key="raw")["Body"].read())

        rows: list[tuple[str, Result, Result, str]] = []
        block_ratios: dict[str, list[float]] = {}
        block_cpu: dict[str, list[float]] = {}
        runs = []

        def pair(
            label: str, ours: Callable[[], Any], theirs: Callable[[], Any], big: bool = False, aio: bool = False
        ) -> None:
            if only and not label.startswith(only):
                return
            a, b = Result(label, "ms" if big else "us"), Result("raw " + label, "ms" if big else "us")
            rows.append((label, a, b, "<= 1.05x"))
            ratios = block_ratios[label] = []
            cpu = block_cpu[label] = [0.0, 0.0, 0.0, 0.0]
            count = n_big if big else n
            if aio:

                async def offloaded() -> Any:
                    return await asyncio.to_thread(theirs)

                mine, base = (lambda k: timed_async(ours, k)), (lambda k: timed_async(offloaded, k))
            else:
                mine, base = (lambda k: timed(ours, k)), (lambda k: timed(theirs, k))
            scale = 1e3 if big else 1e6
            runs.append((a, paired(a, b, count, mine, base, scale, ratios, cpu)))

        pair("dynamodb get (sync)", lambda: kv.sync.get("k"), raw_get)
        pair("dynamodb put (sync)", lambda: kv.sync.put("k", doc), raw_put)
        pair("dynamodb get (sync, botocore)", lambda: kv_botocore.sync.get("k"), raw_get)
        pair("dynamodb put (sync, botocore)", lambda: kv_botocore.sync.put("k", doc), raw_put)
        pair("dynamodb get (async)", lambda: kv.get("k"), raw_get, aio=True)
        pair("dynamodb put (async)", lambda: kv.put("k", doc), raw_put, aio=True)
        pair("s3 put 1 KB (sync)", lambda: bucket.sync.put("small", small), s3_put(small))
        pair("s3 get 1 KB (sync)", lambda: bucket.sync.get("small"), s3_get)
        pair("s3 put 1 KB (async)", lambda: bucket.put("small", small), s3_put(small), aio=True)
        pair("s3 get 1 KB (async)", lambda: bucket.get("small"), s3_get, aio=True)
        small_runs = list(runs)
        runs.clear()
        bucket.sync.put("big", big)
        pair("s3 put 8 MB (sync)", lambda: bucket.sync.put("big", big), s3_put(big), big=True)
        pair("s3 get 8 MB (sync)", lambda: bucket.sync.get("big"), s3_get, big=True)
        pair("s3 put 8 MB (async)", lambda: bucket.put("big", big), s3_put(big), big=True, aio=True)
        pair("s3 get 8 MB (async)", lambda: bucket.get("big"), s3_get, big=True, aio=True)
        s3.put_object(Bucket="bench-bucket", Key="raw", Body=small)
        interleave(rounds, *small_runs)
        s3.put_object(Bucket="bench-bucket", Key="raw", Body=big)
        interleave(rounds, *runs)
        report(
            f"AWS providers vs raw botocore on moto ({n} ops, 8 MB: {n_big}; median of {rounds} rounds, time per op)",
            rows,
        )
        print("\nmedian of adjacent block ratios (ours / raw) [quartiles]; client CPU per op, ours / raw")
        for label, ratios in block_ratios.items():
            q1, q2, q3 = statistics.quantiles(ratios, n=4)
            ours_cpu, raw_cpu, ours_ops, raw_ops = block_cpu[label]
            mine, theirs = ours_cpu / ours_ops * 1e6, raw_cpu / raw_ops * 1e6
            print(
                f"{label:<34} {q2:>6.3f}x [{q1:.3f}, {q3:.3f}]  cpu {mine:>8.0f} / {theirs:>8.0f} us "
                f"{mine / theirs:>6.3f}x"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
