"""The embedded SQLite KV against plain ``sqlite3`` doing the same work, in one run.

Both sides store JSON documents with a version in a WAL-mode SQLite file, one
autocommitted statement per operation, on the same machine at the same moment (rounds
alternate), at the same durability: ``synchronous=FULL`` (the store's default, a sync
per commit) and ``synchronous=NORMAL`` (its ``?synchronous=normal``). The baseline is
what a careful hand-written store would do: ``json.dumps`` + ``INSERT ... ON CONFLICT DO
UPDATE`` with a fresh version for a put, ``SELECT`` + ``json.loads`` for a get. A put
with a sync per commit costs what the disk's sync costs, so those rounds are shorter.

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
from collections.abc import Callable
from pathlib import Path

from _common import Result, arguments, interleave, report

import overcast

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["admin", "math"], "n": 1}


class RawStore:
    def __init__(self, path: Path, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
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


def _runs(
    raw: RawStore, kv: overcast.KeyValueStore, keys: list[str], loop: asyncio.AbstractEventLoop, tag: str
) -> dict[str, tuple[Result, Callable[[], float]]]:
    """The measurements of one durability: raw and Overcast, put and get, both faces."""
    sync = kv.sync
    n = len(keys)

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

    work: dict[str, Callable[[], object]] = {
        "raw put": raw_put,
        "put": ours_put,
        "aput": lambda: loop.run_until_complete(async_put()),
        "raw get": raw_get,
        "get": ours_get,
        "aget": lambda: loop.run_until_complete(async_get()),
    }
    return {
        name: (Result(f"{name} {tag}", "op/s"), lambda op=op: ops_per_second(n, op))  # type: ignore[misc]
        for name, op in work.items()
    }


def main() -> None:
    args = arguments(__doc__ or "")
    n = 2_000 if args.quick else 20_000
    rounds = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        kv_full = overcast.open_kv(f"sqlite:///{tmp}/full.db")
        kv_normal = overcast.open_kv(f"sqlite:///{tmp}/normal.db?synchronous=normal")
        for kv in (kv_full, kv_normal):
            kv.sync.create()
        # a sync per commit makes each put cost the disk's sync: fewer of them per round
        full = _runs(RawStore(Path(tmp) / "raw-full.db", "FULL"), kv_full, _keys(n // 10), loop, "full")
        normal = _runs(RawStore(Path(tmp) / "raw-normal.db", "NORMAL"), kv_normal, _keys(n), loop, "normal")
        interleave(rounds, *full.values(), *normal.values())
        loop.close()
        kv_full.close()
        kv_normal.close()
    rows = []
    for tag, runs in (("full (default)", full), ("normal", normal)):
        r = {name: result for name, (result, _) in runs.items()}
        rows += [
            (f"put, kv.sync, {tag}", r["put"], r["raw put"], ">= 0.70x"),
            (f"get, kv.sync, {tag}", r["get"], r["raw get"], ">= 0.70x"),
            (f"put, await kv, {tag}", r["aput"], r["raw put"], "(reported)"),
            (f"get, await kv, {tag}", r["aget"], r["raw get"], "(reported)"),
        ]
    report(
        f"Embedded SQLite KV vs plain sqlite3 at the same synchronous setting "
        f"({n} ops per round, {n // 10} for puts at full; median of {rounds} rounds, throughput)",
        rows,
    )


def _keys(n: int) -> list[str]:
    return [f"user-{i}" for i in range(n)]


if __name__ == "__main__":
    main()
