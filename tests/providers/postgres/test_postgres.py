"""What is particular to the PostgreSQL providers (the conformance suites cover the semantics)."""

from __future__ import annotations

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
    with pytest.raises(ConfigError, match="max_attempts must be a positive int"):
        overcast.open_queue("postgresql://127.0.0.1:1/app?queue=q&max_attempts=zero")


def test_an_unreachable_server_is_unavailable_naming_the_resource() -> None:
    kv = overcast.open_kv("postgresql://127.0.0.1:1/app?store=s&connect_timeout=1&pool_timeout=2", name="orders")
    with pytest.raises(Unavailable, match="orders: PostgreSQL"):
        kv.sync.get("k")
