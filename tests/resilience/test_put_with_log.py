"""A replicated write and its change-log entry in one atomic call (``put_with_log``), on real servers.

The conformance suite (``tests/conformance/test_kv.py -k put_with_log``) checks what lands
when the call succeeds or is refused; here: a call that fails halfway leaves neither write
(SQLite, PostgreSQL, DynamoDB on moto), and a replicated write on a member with the
capability is one request to its server (Redis, counted by the server itself).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.errors import OvercastError
from overcast.resources.kv import KeyValueStore, LogEntry
from resilience.pairs import replicated_url
from servers import Server
from servers.redis import start_redis

pytestmark = pytest.mark.anyio
LOG = "~oc-log~/"


def _envelope(clock: str, n: int) -> tuple[dict[str, Any], bytes]:
    value = {"_oc": clock, "v": {"n": n}}
    return value, json.dumps(value, separators=(",", ":")).encode()


def _clock(wall: int) -> str:
    return f"{wall:013x}{0:06x}-a"


async def _logged(store: KeyValueStore, key: str, wall: int, n: int, log_data: bytes | None = None) -> Any:
    value, data = _envelope(_clock(wall), n)
    mark = {"c": _clock(wall)}
    entry = json.dumps(mark).encode() if log_data is None else log_data
    return await store._put_with_log(key, value, data, _clock(wall), None, LogEntry(LOG + key, mark, entry))


async def _neither_lands_after(store: KeyValueStore, failing: Any) -> None:
    """A first write lands with its entry; a second whose log entry fails leaves both as they were."""
    first = await _logged(store, "k", 1000, 1)
    assert first is not None
    with pytest.raises(OvercastError):
        await failing()
    item, entry = await store.get("k"), await store.get(LOG + "k")
    assert item is not None and (item.value["v"], item.version) == ({"n": 1}, first[0])
    assert entry is not None and entry.version == first[1]
    assert await store.get("fresh") is None and await store.get(LOG + "fresh") is None


async def test_sqlite_a_failing_log_entry_rolls_the_document_back(tmp_path: Path) -> None:
    store = overcast.open_kv(f"sqlite:///{tmp_path / 'kv.db'}?table=docs")
    await store.create()
    with sqlite3.connect(tmp_path / "kv.db") as conn:  # the log entry's statement fails, in SQLite itself
        conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON docs WHEN NEW.key LIKE '~oc-log~/%' "
            "AND CAST(NEW.value AS TEXT) LIKE '%refuse%' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )
        conn.execute(
            "CREATE TRIGGER refuse_new BEFORE INSERT ON docs WHEN NEW.key = '~oc-log~/fresh' "
            "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
        )

    async def failing() -> None:
        await _logged(store, "k", 2000, 2, log_data=b'{"c":"refuse"}')

    await _neither_lands_after(store, failing)
    with pytest.raises(OvercastError):
        await _logged(store, "fresh", 3000, 3)
    assert await store.get("fresh") is None
    store.close()


async def test_postgresql_a_failing_log_entry_rolls_the_document_back(postgres_server: Server) -> None:
    store = overcast.open_kv(f"{os.environ['OVERCAST_TEST_POSTGRES_URL']}?store=pwl-{uuid.uuid4().hex[:8]}")
    await store.create()

    async def failing() -> None:  # the entry is not JSON: its jsonb cast fails after the document's upsert
        await _logged(store, "k", 2000, 2, log_data=b"{not json")

    await _neither_lands_after(store, failing)
    with pytest.raises(OvercastError):
        await _logged(store, "fresh", 3000, 3, log_data=b"{not json")
    assert await store.get("fresh") is None
    store.close()


async def test_dynamodb_a_failing_log_entry_cancels_the_whole_transaction(moto_server: Server) -> None:
    store = overcast.open_kv(f"dynamodb://pwl-{uuid.uuid4().hex[:8]}?client=lite")
    await store.create()
    too_big = json.dumps({"c": "x" * 500_000}).encode()  # over DynamoDB's 400 KB item: the service refuses it

    async def failing() -> None:
        await _logged(store, "k", 2000, 2, log_data=too_big)

    await _neither_lands_after(store, failing)
    with pytest.raises(OvercastError):
        await _logged(store, "fresh", 3000, 3, log_data=too_big)
    assert await store.get("fresh") is None
    store.close()


async def _entries(member: Any) -> list[str]:
    """The change-log entries beside a member (not the replicator's own mark, ``~oc-log~/~oc-log~/…``)."""
    return [item.key async for item in member.scan(LOG) if not item.key.startswith(LOG + LOG)]


@pytest.fixture(scope="module")
def own_redis() -> Iterator[Server]:
    """A Redis server of this module's own, so its command counts are this module's."""
    server = start_redis()
    yield server
    server.stop()


def _script_calls(server: Server) -> int:
    import redis

    client = redis.Redis(host=server.host, port=server.port)
    stats = client.info("commandstats")
    client.close()
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def _reset(server: Server) -> None:
    import redis

    client = redis.Redis(host=server.host, port=server.port)
    client.config_resetstat()
    client.close()


async def test_a_replicated_write_is_one_request_on_its_primary(own_redis: Server, tmp_path: Path) -> None:
    primary = f"redis://{own_redis.host}:{own_redis.port}/0?prefix=one-{uuid.uuid4().hex[:8]}"
    store: Any = overcast.open_kv(replicated_url(primary, [f"sqlite:///{tmp_path / 'replica.db'}"]))
    store.replicator.stop()  # nothing in the background: what the server counts is the writes' own
    await store.put("warm", {"n": 0})
    _reset(own_redis)
    n = 20
    for i in range(n):
        await store.put(f"k{i % 5}" if i % 2 else f"new-{i}", {"n": i})
    assert _script_calls(own_redis) == n  # one script per write: the document and its log entry
    plain = overcast.open_kv(primary)
    assert len(await _entries(plain)) == 5 + n // 2 + 1  # every key written has its entry beside it (warm too)
    assert await store.replicate() == n + 1  # each write shipped from memory
    assert await _entries(plain) == []  # and its entry dropped
    replica = overcast.open_kv(f"sqlite:///{tmp_path / 'replica.db'}")
    copy = await replica.get("k4")  # written last by i = 19
    assert copy is not None and copy.value["v"] == {"n": 19}
    store.close()


async def test_a_member_without_the_capability_keeps_two_concurrent_writes(tmp_path: Path) -> None:
    name = f"mem-{uuid.uuid4().hex[:8]}"
    store: Any = overcast.open_kv(replicated_url(f"memory://{name}", [f"sqlite:///{tmp_path / 'r.db'}"]))
    assert not store.members[0].store.supports("put_with_log") and store.members[1].store.supports("put_with_log")
    store.replicator.stop()
    await asyncio.gather(*(store.put(f"k{i}", {"n": i}) for i in range(10)))
    entries = await _entries(store.members[0].store)
    assert sorted(entries) == sorted(f"{LOG}k{i}" for i in range(10))  # the entry written beside each write
    assert await store.replicate() == 10
    assert await _entries(store.members[0].store) == []
    for i in range(10):
        copy = await overcast.open_kv(f"sqlite:///{tmp_path / 'r.db'}").get(f"k{i}")
        assert copy is not None and copy.value["v"] == {"n": i}
    store.close()


async def test_the_replicator_ships_a_hot_key_once_for_the_writes_queued(own_redis: Server, tmp_path: Path) -> None:
    replica = f"redis://{own_redis.host}:{own_redis.port}/0?prefix=hot-{uuid.uuid4().hex[:8]}"
    store: Any = overcast.open_kv(replicated_url(f"sqlite:///{tmp_path / 'primary.db'}", [replica]))
    store.replicator.stop()  # the writes queue up, as when the shipper falls behind
    for i in range(30):
        await store.put(f"k{i % 3}", {"n": i})
    warm, data = _envelope(_clock(1), 0)
    await overcast.open_kv(replica)._put_if_newer("warm", warm, data, _clock(1), None)  # the script loaded
    _reset(own_redis)
    assert await store.replicator.run_once(scan=False) == 30  # superseded writes count: a newer state went
    assert _script_calls(own_redis) == 3  # one only-if-newer write per key on the replica
    for k, n in (("k0", 27), ("k1", 28), ("k2", 29)):
        copy = await overcast.open_kv(replica).get(k)
        assert copy is not None and copy.value["v"] == {"n": n}
    assert await _entries(store.members[0].store) == []  # each key's entry dropped by its last write
    store.close()
