"""The PostgreSQL providers against psycopg doing the same work on the same server, in one run.

Starts a throw-away PostgreSQL cluster (Debian's, through the tests' own starter). Per
operation, one statement on both sides on a pooled autocommit connection: KV get (raw:
the same SELECT + the same row), KV put (raw: the same upsert), queue send (raw: the same
INSERT). Goal: each within 1.05x of raw psycopg.

    .venv/bin/python benchmarks/postgres_providers.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

import overcast
from overcast.providers.postgres import _db
from overcast.providers.postgres.kv import _LIVE, _UPSERT
from servers.postgres import start_postgres


def per_op_us(n: int, op: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            op()
        return (time.perf_counter() - start) / n * 1e6

    return run


def main() -> None:
    args = arguments(__doc__ or "")
    n = 300 if args.quick else 3_000
    rounds = 3 if args.quick else 7
    server = start_postgres()
    try:
        server.apply_env()
        url = server.env["OVERCAST_TEST_POSTGRES_URL"]
        doc = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
        kv = overcast.open_kv(f"{url}?store=bench").sync
        queue = overcast.open_queue(f"{url}?queue=bench").sync
        kv.put("k", doc)
        pool: ConnectionPool[Any] = ConnectionPool(
            _db.conninfo(overcast.resources.url.ResourceURL.parse(url)), kwargs={"autocommit": True}, open=True
        )

        def raw_get() -> Any:
            with pool.connection() as conn:
                sql = "SELECT value, raw, version, expires_at FROM overcast_kv "
                sql += f" WHERE store = %s AND key = %s AND {_LIVE}"
                return conn.execute(sql, ("raw", b"k")).fetchone()

        def raw_put() -> None:
            with pool.connection() as conn:
                conn.execute(_UPSERT, ("raw", b"k", json.dumps(doc), None, uuid.uuid4().hex, None))

        def raw_send() -> None:
            with pool.connection() as conn:
                conn.execute(
                    "INSERT INTO overcast_messages (queue, id, body, attributes, visible_at)"
                    " VALUES (%s, %s, %s, %s, now() + %s)",
                    ("raw", str(uuid.uuid4()), b'{"n":1}', Jsonb({}), timedelta(0)),
                )

        raw_put()
        pairs = {
            "kv get": (lambda: kv.get("k"), raw_get),
            "kv put": (lambda: kv.put("k", doc), raw_put),
            "queue send": (lambda: queue.send({"n": 1}), raw_send),
        }
        results = {name: (Result(name, "us"), Result("raw " + name, "us")) for name in pairs}
        runs = []
        for name, (ours, theirs) in pairs.items():
            runs += [(results[name][0], per_op_us(n, ours)), (results[name][1], per_op_us(n, theirs))]
        interleave(rounds, *runs)
        report(
            f"PostgreSQL providers vs psycopg ({n} ops per round, median of {rounds} rounds, time per op)",
            [(name, ours, theirs, "<= 1.05x") for name, (ours, theirs) in results.items()],
        )
        pool.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
