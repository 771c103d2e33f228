"""Idle pooled connections the server dropped (a restart, a failover, an idle timeout) are
replaced on checkout instead of failing the next call: the server here really terminates
every other backend (``pg_terminate_backend``) between two calls. (The async face's pool:
``test_postgres.py::test_a_connection_killed_by_the_server_is_replaced``.)"""

from __future__ import annotations

import time
import uuid

import psycopg

import overcast
from overcast.providers.postgres import _db
from servers import Server


def _terminate_others(server: Server) -> int:
    location = overcast.resources.url.ResourceURL.parse(server.env["OVERCAST_TEST_POSTGRES_URL"])
    with psycopg.connect(_db.conninfo(location), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


def test_sync_calls_survive_dropped_idle_connections(postgres_server: Server) -> None:
    base = postgres_server.env["OVERCAST_TEST_POSTGRES_URL"]
    kv = overcast.open_kv(f"{base}?store=s{uuid.uuid4().hex[:8]}")
    queue = overcast.open_queue(f"{base}?queue=q{uuid.uuid4().hex[:8]}")
    kv.sync.put("k", {"n": 1})
    queue.sync.send({"n": 1})
    assert _terminate_others(postgres_server) >= 1
    time.sleep(_db.IDLE_CHECK + 0.1)  # pooled connections idle long enough to be checked
    assert kv.sync.get("k") is not None  # a read
    kv.sync.put("k", {"n": 2})  # a write
    queue.sync.send({"n": 2})
    assert len(queue.sync.receive(max_messages=10)) == 2
