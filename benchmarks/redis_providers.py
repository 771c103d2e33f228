"""The Redis providers against redis-py doing the same work on the same server, in one run.

Starts its own redis-server (Debian's) on a free port. Per operation, one round trip on
both sides: cache GET/SET (raw: GET/SET PX + json), KV get (raw: HMGET + json) and KV put
(raw: the same Lua script through redis-py's EVALSHA), queue send (raw: XADD), topic
publish to one subscription (raw: the same Lua script); and from async code, cache and
KV get (the providers' redis.asyncio path against redis.asyncio). Also
the cache's GET throughput unpipelined against a 100-command pipeline of raw GETs, to
show what batching would gain. Goal: each provider within 1.05x of its raw client.

    .venv/bin/python benchmarks/redis_providers.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from _common import Result, arguments, interleave, per_op_us, report

import overcast
from overcast.providers.redis.kv import _PUT
from overcast.providers.redis.queue import _PUBLISH


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def paired_us(n: int, ours: Callable[[], Any], theirs: Callable[[], Any]) -> tuple[float, float]:
    """Time per op of each, alternating op by op (the machine is shared: a burst of other
    work must hit both sides alike)."""
    clock = time.perf_counter
    spent = [0.0, 0.0]
    for i in range(n):
        first, second = (ours, theirs) if i % 2 else (theirs, ours)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        spent[i % 2 == 0] += t1 - t0  # ours first on odd i: index 0
        spent[i % 2 == 1] += t2 - t1
    return spent[0] / n * 1e6, spent[1] / n * 1e6


async def async_pairs(url: str, doc: dict[str, Any], n: int, rounds: int) -> dict[str, tuple[Result, Result]]:
    """Async callers: the providers' redis.asyncio path against redis.asyncio itself."""
    raw = aioredis.Redis.from_url(url)
    cache = overcast.open_cache(f"{url}?prefix=bench-acache")
    kv = overcast.open_kv(f"{url}?prefix=bench-akv")
    data = json.dumps(doc, separators=(",", ":")).encode()
    await cache.set("k", doc)
    await kv.put("k", doc)
    await raw.set("{raw-a}:k", data)
    await raw.hset("{raw-a}:i:k", mapping={"v": data, "ver": "x", "exp": ""})

    async def raw_kv_get() -> Any:
        value, _version, _exp = await raw.hmget("{raw-a}:i:k", ["v", "ver", "exp"])
        return json.loads(value)

    async def raw_cache_get() -> Any:
        return json.loads(await raw.get("{raw-a}:k"))

    pairs: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
        "async cache get": (lambda: cache.get("k"), raw_cache_get),
        "async kv get": (lambda: kv.get("k"), raw_kv_get),
    }
    results = {name: (Result(name, "us"), Result("raw " + name, "us")) for name in pairs}

    clock = time.perf_counter
    for _ in range(rounds):
        for name, (ours, theirs) in pairs.items():
            spent = [0.0, 0.0]
            for i in range(n):  # alternating op by op, as paired_us
                first, second = (ours, theirs) if i % 2 else (theirs, ours)
                t0 = clock()
                await first()
                t1 = clock()
                await second()
                t2 = clock()
                spent[i % 2 == 0] += t1 - t0
                spent[i % 2 == 1] += t2 - t1
            results[name][0].samples.append(spent[0] / n * 1e6)
            results[name][1].samples.append(spent[1] / n * 1e6)
    await raw.aclose()
    return results


def main() -> None:
    args = arguments(__doc__ or "")
    n = 200 if args.quick else 500
    rounds = 4 if args.quick else 40
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        raw = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                raw.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        doc = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
        data = json.dumps(doc, separators=(",", ":")).encode()
        cache = overcast.open_cache(f"{url}?prefix=bench-cache").sync
        kv = overcast.open_kv(f"{url}?prefix=bench-kv").sync
        queue = overcast.open_queue(f"{url}?prefix=bench-q").sync
        cache.set("k", doc)
        kv.put("k", doc)
        raw.set("{raw}:k", data)
        topic = overcast.open_topic(f"{url}?prefix=bench-t")
        subscription = topic.subscription("audit")
        subscription.sync.create()
        topic_sync = topic.sync
        raw.xgroup_create("{raw-t}:sub:audit:s", "overcast", id="0", mkstream=True)
        raw.sadd("{raw-t}:subs", "{raw-t}:sub:audit:s")
        publish_script = raw.register_script(_PUBLISH)
        put_script = raw.register_script(_PUT)
        put_script(keys=["{raw}:i:k", "{raw}:idx"], args=["put", "", data, "v", "", "k"])

        def raw_kv_get() -> Any:
            value, _version, _exp = raw.hmget("{raw}:i:k", ["v", "ver", "exp"])
            return json.loads(value)

        def raw_kv_put() -> Any:
            return put_script(
                keys=["{raw}:i:k", "{raw}:idx"],
                args=["put", "", json.dumps(doc, separators=(",", ":")).encode(), uuid.uuid4().hex, "", "k"],
            )

        def raw_pipelined_get() -> None:
            with raw.pipeline(transaction=False) as pipe:
                for _ in range(100):
                    pipe.get("{raw}:k")
                for value in pipe.execute():
                    json.loads(value)

        pairs = {
            "cache get": (lambda: cache.get("k"), lambda: json.loads(raw.get("{raw}:k"))),
            "cache set": (
                lambda: cache.set("k", doc, ttl=300),
                lambda: raw.set("{raw}:k", json.dumps(doc, separators=(",", ":")).encode(), px=300_000),
            ),
            "kv get": (lambda: kv.get("k"), raw_kv_get),
            "kv put": (lambda: kv.put("k", doc), raw_kv_put),
            "queue send": (
                lambda: queue.send(doc),
                lambda: raw.xadd("{raw}:s", {"id": str(uuid.uuid4()), "b": json.dumps(doc).encode(), "a": b"{}"}),
            ),
            "topic publish (1 subscription)": (
                lambda: topic_sync.publish(doc),
                lambda: publish_script(
                    keys=["{raw-t}:subs"], args=[str(uuid.uuid4()), json.dumps(doc).encode(), b"{}"]
                ),
            ),
        }
        results = {name: (Result(name, "us"), Result("raw " + name, "us")) for name in pairs}
        piped = Result("raw pipelined get", "us")
        # Short runs, many rounds, each pair measured back to back in alternating order: the
        # machine is shared, and a burst of other work must hit both sides alike.
        for _ in range(rounds):
            for name, (ours, theirs) in pairs.items():
                ours_us, theirs_us = paired_us(n, ours, theirs)
                results[name][0].samples.append(ours_us)
                results[name][1].samples.append(theirs_us)
            interleave(1, (piped, lambda: per_op_us(max(1, n // 100), raw_pipelined_get)() / 100))
        async_results = asyncio.run(async_pairs(url, doc, n, rounds))
        rows = [(name, ours, theirs, "<= 1.05x") for name, (ours, theirs) in {**results, **async_results}.items()]
        rows.append(("cache get vs raw 100-GET pipeline", results["cache get"][0], piped, "(reported)"))
        report(f"Redis providers vs redis-py ({n} ops per round, median of {rounds} rounds, time per op)", rows)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
