"""What is particular to the PostgreSQL providers (the conformance suites cover the semantics)."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid

import psycopg
import pytest

import overcast
from overcast.errors import ConfigError, Unavailable
from overcast.providers.postgres import _db
from servers import Server


def _url(server: Server, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{server.env['OVERCAST_TEST_POSTGRES_URL']}?{query}"


def _raw(server: Server) -> psycopg.Connection[tuple[object, ...]]:
    location = overcast.resources.url.ResourceURL.parse(server.env["OVERCAST_TEST_POSTGRES_URL"])
    return psycopg.connect(_db.conninfo(location), autocommit=True)


def test_the_schema_is_versioned_and_documents_are_jsonb(postgres_server: Server) -> None:
    kv = overcast.open_kv(_url(postgres_server, store=f"s{uuid.uuid4().hex[:8]}"))
    kv.sync.put("plain", {"n": 1, "tags": ["a"]})
    kv.sync.put("nul", {"text": "a\u0000b"})
    with _raw(postgres_server) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM overcast_schema ORDER BY version")]
        assert versions == list(range(1, len(_db.MIGRATIONS) + 1))
        rows = dict(
            conn.execute(
                "SELECT convert_from(key, 'UTF8'), jsonb_typeof(value) FROM overcast_kv WHERE store = %s",
                (kv._store,),  # type: ignore[attr-defined]
            ).fetchall()
        )
    assert rows == {"plain": "object", "nul": None}  # jsonb cannot hold U+0000: kept as JSON bytes
    assert kv.sync.get("nul").value == {"text": "a\u0000b"}  # type: ignore[union-attr]


def _migrate_in_a_fresh_process(url: str) -> int:
    store = overcast.open_kv(url)
    store.sync.create()
    return len(_db.MIGRATIONS)


def test_processes_migrating_together_apply_each_migration_once(postgres_server: Server) -> None:
    database = f"db{uuid.uuid4().hex[:8]}"
    with _raw(postgres_server) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    base = postgres_server.env["OVERCAST_TEST_POSTGRES_URL"].rsplit("/", 1)[0]
    url = f"{base}/{database}?store=race"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_migrate_in_a_fresh_process, [url] * 4) == [len(_db.MIGRATIONS)] * 4
    location = overcast.resources.url.ResourceURL.parse(url)
    with psycopg.connect(_db.conninfo(location), autocommit=True) as conn:
        rows = conn.execute("SELECT version, count(*) FROM overcast_schema GROUP BY version ORDER BY 1").fetchall()
    assert rows == [(v, 1) for v in range(1, len(_db.MIGRATIONS) + 1)]


def test_a_topic_reaches_only_subscriptions_that_exist(postgres_server: Server) -> None:
    topic = overcast.open_topic(_url(postgres_server, topic=f"t{uuid.uuid4().hex[:8]}"))
    early = topic.subscription("early")
    early.sync.create()
    topic.sync.publish({"n": 1})
    late = topic.subscription("late")
    late.sync.create()
    topic.sync.publish({"n": 2})
    assert [m.body for m in early.sync.receive(max_messages=10)] == [{"n": 1}, {"n": 2}]
    assert [m.body for m in late.sync.receive(max_messages=10)] == [{"n": 2}]


def test_credentials_are_not_taken_from_urls() -> None:
    with pytest.raises(ConfigError, match="carries credentials"):
        overcast.open_kv("postgresql://app:secret@db.internal:5432/app")


def test_bad_names_and_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="store 'a b'"):
        overcast.open_kv("postgresql://127.0.0.1:1/app?store=a b")
    with pytest.raises(ConfigError, match="option max_attempts must be a positive whole number"):
        overcast.open_queue("postgresql://127.0.0.1:1/app?queue=q&max_attempts=zero")


def test_an_unreachable_server_is_unavailable_naming_the_resource() -> None:
    kv = overcast.open_kv("postgresql://127.0.0.1:1/app?store=s&connect_timeout=1&pool_timeout=2", name="orders")
    with pytest.raises(Unavailable, match="orders: PostgreSQL"):
        kv.sync.get("k")


def test_the_async_face_uses_connections_of_the_running_loop(postgres_server: Server) -> None:
    kv = overcast.open_kv(_url(postgres_server, store=f"s{uuid.uuid4().hex[:8]}"))

    async def work(n: int) -> tuple[int, object]:
        await kv.put(f"k{n}", {"n": n})
        item = await kv.get(f"k{n}")
        assert item is not None and item.value == {"n": n}
        return len(await asyncio.gather(*(kv.get(f"k{n}") for _ in range(20)))), _db.async_pool(kv.location)

    first_count, first_pool = asyncio.run(work(1))  # the run ends: no task left on the loop
    second_count, second_pool = asyncio.run(work(2))
    assert (first_count, second_count) == (20, 20)
    assert first_pool is not second_pool  # async connections belong to their loop
    assert sum(ref() is None or ref().is_closed() for ref, _ in _db._async_pools.values()) <= 1  # type: ignore[union-attr]  # closed loops' pools are dropped
    assert kv.sync.get("k1") is not None  # and the blocking face has its own pool


def test_a_full_async_pool_waits_then_is_unavailable(postgres_server: Server) -> None:
    kv = overcast.open_kv(_url(postgres_server, store="full", pool_size="1", pool_timeout="0.3"), name="orders")

    async def main() -> None:
        await kv.put("k", {"n": 1})
        pool = _db.async_pool(kv.location)
        held = await pool.acquire()
        waiting = asyncio.ensure_future(kv.get("k"))
        await asyncio.sleep(0.1)
        await pool.release(held)  # the waiting read gets the connection
        assert (await waiting) is not None
        held = await pool.acquire()
        try:
            with pytest.raises(Unavailable, match=r"orders: PostgreSQL: cannot read key 'k'.*pool_size"):
                await kv.get("k")
        finally:
            await pool.release(held)

    asyncio.run(main())


def test_a_connection_killed_by_the_server_is_replaced(postgres_server: Server) -> None:
    kv = overcast.open_kv(_url(postgres_server, store="killed", application_name="killed-test"))

    async def main() -> None:
        await kv.put("k", {"n": 1})
        with _raw(postgres_server) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'killed-test'"
            )
        await asyncio.sleep(_db.IDLE_CHECK + 0.1)  # idle long enough to be checked at checkout
        assert (await kv.get("k")) is not None  # on a new connection: the killed one is dropped
        await kv.put("k", {"n": 2})

    asyncio.run(main())


def test_an_unreachable_server_is_unavailable_from_async_code() -> None:
    kv = overcast.open_kv("postgresql://127.0.0.1:1/app?store=s&connect_timeout=1", name="orders")
    with pytest.raises(Unavailable, match="orders: PostgreSQL"):
        asyncio.run(kv.get("k"))


def test_a_receive_that_picks_only_dead_letters_goes_on_to_the_next_message(postgres_server: Server) -> None:
    handle = overcast.open_queue(_url(postgres_server, queue=f"q{uuid.uuid4().hex[:8]}", max_attempts="1"))
    queue = handle.sync
    queue.send({"n": "a"})
    (first,) = queue.receive(max_messages=1)
    queue.nack(first)  # due again, its one attempt used: a dead letter on the next pick
    queue.send({"n": "b"})
    assert [m.body for m in queue.receive(max_messages=1)] == [{"n": "b"}]
    assert [m.body for m in handle.dead_letters().sync.receive(max_messages=10)] == [{"n": "a"}]
