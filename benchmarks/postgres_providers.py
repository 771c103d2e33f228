"""The PostgreSQL providers against psycopg doing the same work on the same server, in one run.

Starts a throw-away PostgreSQL cluster (Debian's, through the tests' own starter). Each
operation runs the same statements on both sides, on pooled autocommit connections with
the same pool size:

- KV get (raw: the same SELECT), KV put (the same upsert), queue send (the same INSERT),
  queue round trip: send, receive and ack one message on a queue kept empty (the same
  INSERT, the claiming statement, the DELETE);
- blocking face (``handle.sync``) against psycopg_pool's ``ConnectionPool``;
- async face against psycopg_pool's ``AsyncConnectionPool`` on the same loop;
- and the choice made for the async face: the async hooks on the loop's own connections
  against the blocking hooks run in a worker thread (what ``offload`` would do).

Goal: each provider row within 1.05x of raw psycopg.

    .venv/bin/python benchmarks/postgres_providers.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, per_op_us, per_op_us_async, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import overcast
from overcast.providers.postgres import _db
from overcast.providers.postgres.kv import _GET, _UPSERT
from overcast.providers.postgres.queue import _ACK, _CLAIM, _SEND
from overcast.resources import bridge
from servers.postgres import start_postgres

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
SECOND = timedelta(seconds=30)


def best(result: Result) -> Result:
    return Result(result.name, result.unit, [min(result.samples)])


def claim(queue: str) -> dict[str, Any]:
    return {"queue": queue, "limit": 1, "dead": f"{queue}#dead", "max": 5, "timeout": SECOND}


def main() -> None:
    args = arguments(__doc__ or "")
    n = 200 if args.quick else 1_000
    rounds = 5 if args.quick else 15
    server = start_postgres()
    loop = asyncio.new_event_loop()
    try:
        server.apply_env()
        url = server.env["OVERCAST_TEST_POSTGRES_URL"]
        info = _db.conninfo(overcast.resources.url.ResourceURL.parse(url))
        kv = overcast.open_kv(f"{url}?store=bench")
        queue = overcast.open_queue(f"{url}?queue=bench")
        cycling = overcast.open_queue(f"{url}?queue=bench-cycle")  # kept empty: sends pile up in "bench"
        kv.sync.put("k", DOC)
        size = {"min_size": 1, "max_size": 10, "kwargs": {"autocommit": True}}
        pool: ConnectionPool[Any] = ConnectionPool(info, open=True, **size)  # type: ignore[arg-type]
        apool: AsyncConnectionPool[Any] = AsyncConnectionPool(info, open=False, **size)  # type: ignore[arg-type]
        loop.run_until_complete(apool.open())

        # -- raw psycopg, blocking
        def raw_get() -> Any:
            with pool.connection() as conn:
                return conn.execute(_GET, ("raw", b"k")).fetchone()

        def raw_put() -> None:
            with pool.connection() as conn:
                conn.execute(_UPSERT, ("raw", b"k", json.dumps(DOC), None, uuid.uuid4().hex, None))

        def raw_send() -> None:
            with pool.connection() as conn:
                conn.execute(_SEND, ("raw", str(uuid.uuid4()), b'{"n":1}', Jsonb({}), timedelta(0)))

        def raw_cycle() -> None:
            with pool.connection() as conn:
                conn.execute(_SEND, ("raw-cycle", str(uuid.uuid4()), b'{"n":1}', Jsonb({}), timedelta(0)))
            with pool.connection() as conn:
                seq, receipt = conn.execute(_CLAIM, claim("raw-cycle")).fetchall()[0][::5]
            with pool.connection() as conn:  # acked after the work, as a consumer does
                conn.execute(_ACK, (seq, receipt))

        # -- raw psycopg, async
        async def araw_get() -> Any:
            async with apool.connection() as conn:
                return await (await conn.execute(_GET, ("raw", b"k"))).fetchone()

        async def araw_put() -> None:
            async with apool.connection() as conn:
                await conn.execute(_UPSERT, ("raw", b"k", json.dumps(DOC), None, uuid.uuid4().hex, None))

        async def araw_send() -> None:
            async with apool.connection() as conn:
                await conn.execute(_SEND, ("araw", str(uuid.uuid4()), b'{"n":1}', Jsonb({}), timedelta(0)))

        async def araw_cycle() -> None:
            async with apool.connection() as conn:
                await conn.execute(_SEND, ("araw-cycle", str(uuid.uuid4()), b'{"n":1}', Jsonb({}), timedelta(0)))
            async with apool.connection() as conn:
                rows = await (await conn.execute(_CLAIM, claim("araw-cycle"))).fetchall()
            seq, receipt = rows[0][::5]
            async with apool.connection() as conn:
                await conn.execute(_ACK, (seq, receipt))

        # -- the providers
        def cycle() -> None:
            cycling.sync.send({"n": 1})
            (message,) = cycling.sync.receive(max_messages=1, visibility_timeout=30)
            cycling.sync.ack(message)

        async def acycle() -> None:
            await cycling.send({"n": 1})
            (message,) = await cycling.receive(max_messages=1, visibility_timeout=30)
            await cycling.ack(message)

        async def offloaded_get() -> Any:
            return await bridge.offload(kv._get_blocking, "k")

        async def offloaded_put() -> Any:
            data = json.dumps(DOC, separators=(",", ":")).encode()
            return await bridge.offload(kv._put_blocking, "k", DOC, data, None, False, None)

        raw_put()
        sync_pairs = {
            "kv get (sync)": (lambda: kv.sync.get("k"), raw_get),
            "kv put (sync)": (lambda: kv.sync.put("k", DOC), raw_put),
            "queue send (sync)": (lambda: queue.sync.send({"n": 1}), raw_send),
            "queue send+receive+ack (sync)": (cycle, raw_cycle),
        }
        async_pairs = {
            "kv get (async)": (lambda: kv.get("k"), araw_get),
            "kv put (async)": (lambda: kv.put("k", DOC), araw_put),
            "queue send (async)": (lambda: queue.send({"n": 1}), araw_send),
            "queue send+receive+ack (async)": (acycle, araw_cycle),
        }
        choice_pairs = {
            "kv get: loop vs worker thread": (lambda: kv.get("k"), offloaded_get),
            "kv put: loop vs worker thread": (lambda: kv.put("k", DOC), offloaded_put),
        }
        results: dict[str, tuple[Result, Result]] = {}
        runs = []
        for name, (ours, theirs) in sync_pairs.items():
            results[name] = (Result(name, "us"), Result("raw " + name, "us"))
            runs += [(results[name][0], per_op_us(n, ours)), (results[name][1], per_op_us(n, theirs))]
        for name, (aours, atheirs) in {**async_pairs, **choice_pairs}.items():
            results[name] = (Result(name, "us"), Result("raw " + name, "us"))
            runs += [
                (results[name][0], per_op_us_async(loop, n, aours)),
                (results[name][1], per_op_us_async(loop, n, atheirs)),
            ]
        interleave(rounds, *runs)
        # The best round of each: on a machine shared with other work, the noise only ever adds time.
        results = {name: (best(ours), best(theirs)) for name, (ours, theirs) in results.items()}
        title = f"({n} ops per round, best of {rounds} interleaved rounds, time per op)"
        report(
            f"PostgreSQL providers vs psycopg {title}",
            [(name, *results[name], "<= 1.05x") for name in {**sync_pairs, **async_pairs}],
        )
        report(
            f"Async face: hooks on the loop's connections (overcast) vs blocking hooks in a worker thread {title}",
            [(name, *results[name], "< 1x") for name in choice_pairs],
        )
        pool.close()
        loop.run_until_complete(apool.close())
    finally:
        loop.close()
        server.stop()


if __name__ == "__main__":
    main()
