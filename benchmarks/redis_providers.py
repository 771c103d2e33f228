"""The Redis providers against redis-py doing the same work on the same server, in one run.

Starts its own redis-server (Debian's) on a free port. Per operation, one round trip on
both sides: cache GET/SET (raw: GET/SET PX + json), KV get (raw: HMGET + json) and KV put
(raw: the same Lua script through redis-py's EVALSHA), queue send (raw: XADD), topic
publish to one subscription (raw: the same Lua script). Also
the cache's GET throughput unpipelined against a 100-command pipeline of raw GETs, to
show what batching would gain. Goal: each provider within 1.05x of its raw client.

    .venv/bin/python benchmarks/redis_providers.py [--quick]
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from _common import Result, arguments, interleave, report

import overcast
from overcast.providers.redis.kv import _PUT
from overcast.providers.redis.queue import _PUBLISH


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def per_op_us(n: int, op: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            op()
        return (time.perf_counter() - start) / n * 1e6

    return run


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
        for round_ in range(rounds):
            for name, (ours, theirs) in pairs.items():
                pair = [(results[name][0], per_op_us(n, ours)), (results[name][1], per_op_us(n, theirs))]
                interleave(1, *(pair if round_ % 2 else pair[::-1]))
            interleave(1, (piped, lambda: per_op_us(max(1, n // 100), raw_pipelined_get)() / 100))
        rows = [(name, ours, theirs, "<= 1.05x") for name, (ours, theirs) in results.items()]
        rows.append(("cache get vs raw 100-GET pipeline", results["cache get"][0], piped, "(reported)"))
        report(f"Redis providers vs redis-py ({n} ops per round, median of {rounds} rounds, time per op)", rows)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
