"""The embedded SQLite KV against plain ``sqlite3`` doing the same work, in one run.

Both sides store JSON documents with a version in a WAL-mode SQLite file with
``synchronous=NORMAL``, one autocommitted statement per operation, on the same
machine at the same moment (rounds alternate). The baseline is what a careful
hand-written store would do: ``json.dumps`` + ``INSERT ... ON CONFLICT DO UPDATE``
with a fresh version for a put, ``SELECT`` + ``json.loads`` for a get.

Goal: at least 0.7x the baseline's throughput, for both get and put, through the
synchronous face (``kv.sync``) and the async one.

    .venv/bin/python benchmarks/kv_sqlite.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from _common import Result, arguments, interleave, report

import overcast

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["admin", "math"], "n": 1}


class RawStore:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, version TEXT NOT NULL, "
            "expires REAL)"
        )

    def put(self, key: str, value: dict[str, object]) -> str:
        version = uuid.uuid4().hex
        self.conn.execute(
            "INSERT INTO kv (key, value, version, expires) VALUES (?, ?, ?, NULL) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value, version = excluded.version, expires = excluded.expires",
            (key, json.dumps(value, separators=(",", ":")).encode(), version),
        )
        return version

    def get(self, key: str) -> dict[str, object] | None:
        row = self.conn.execute(
            "SELECT value, version FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)", (key, time.time())
        ).fetchone()
        return None if row is None else json.loads(row[0])


def ops_per_second(n: int, op: object) -> float:
    start = time.perf_counter()
    op()  # type: ignore[operator]
    return n / (time.perf_counter() - start)


def main() -> None:
    args = arguments(__doc__ or "")
    n = 2_000 if args.quick else 20_000
    rounds = 3 if args.quick else 7
    keys = [f"user-{i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        raw = RawStore(Path(tmp) / "raw.db")
        kv = overcast.open_kv(f"sqlite:///{tmp}/overcast.db")
        sync = kv.sync
        sync.create()
        loop = asyncio.new_event_loop()

        def raw_put() -> None:
            for key in keys:
                raw.put(key, DOC)

        def raw_get() -> None:
            for key in keys:
                raw.get(key)

        def ours_put() -> None:
            for key in keys:
                sync.put(key, DOC)

        def ours_get() -> None:
            for key in keys:
                sync.get(key)

        async def async_put() -> None:
            for key in keys:
                await kv.put(key, DOC)

        async def async_get() -> None:
            for key in keys:
                await kv.get(key)

        results = {name: Result(name, "op/s") for name in ("raw put", "put", "aput", "raw get", "get", "aget")}
        interleave(
            rounds,
            (results["raw put"], lambda: ops_per_second(n, raw_put)),
            (results["put"], lambda: ops_per_second(n, ours_put)),
            (results["aput"], lambda: ops_per_second(n, lambda: loop.run_until_complete(async_put()))),
            (results["raw get"], lambda: ops_per_second(n, raw_get)),
            (results["get"], lambda: ops_per_second(n, ours_get)),
            (results["aget"], lambda: ops_per_second(n, lambda: loop.run_until_complete(async_get()))),
        )
        loop.close()
        kv.close()
    report(
        f"Embedded SQLite KV vs plain sqlite3 ({n} ops per round, median of {rounds} rounds, throughput)",
        [
            ("put, kv.sync", results["put"], results["raw put"], ">= 0.70x"),
            ("get, kv.sync", results["get"], results["raw get"], ">= 0.70x"),
            ("put, await kv", results["aput"], results["raw put"], "(reported)"),
            ("get, await kv", results["aget"], results["raw get"], "(reported)"),
        ],
    )


if __name__ == "__main__":
    main()
