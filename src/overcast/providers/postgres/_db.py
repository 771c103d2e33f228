"""Connection pools, the schema and its versioned migrations, and error mapping.

Credentials never sit in URLs: libpq reads them from its environment (``PGUSER``,
``PGPASSWORD``, ``PGPASSFILE``, ``PGSSLMODE``, ...), as every PostgreSQL tool does.
The schema is created on first use and migrated under an advisory lock, so processes
starting together apply each migration once.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import ConfigError, InvalidArgument, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.url import ResourceURL

#: The schema, one migration per version; never edit a released one, append.
MIGRATIONS: list[str] = [
    # 1: key-value documents, several stores in one table
    """
    CREATE TABLE IF NOT EXISTS overcast_kv (
        store text NOT NULL,
        key bytea NOT NULL,
        value jsonb,
        raw bytea,
        version text NOT NULL,
        expires_at timestamptz,
        PRIMARY KEY (store, key),
        CHECK ((value IS NULL) <> (raw IS NULL))
    );
    CREATE INDEX IF NOT EXISTS overcast_kv_expiry ON overcast_kv (expires_at) WHERE expires_at IS NOT NULL;
    """,
    # 2: queues (a topic's subscriptions are queues named topic/subscription) and topics
    """
    CREATE TABLE IF NOT EXISTS overcast_messages (
        seq bigserial PRIMARY KEY,
        queue text NOT NULL,
        id text NOT NULL,
        body bytea NOT NULL,
        attributes jsonb NOT NULL DEFAULT '{}',
        attempts integer NOT NULL DEFAULT 0,
        visible_at timestamptz NOT NULL,
        receipt text,
        sent_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS overcast_messages_visible ON overcast_messages (queue, visible_at, seq);
    CREATE TABLE IF NOT EXISTS overcast_subscriptions (
        topic text NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, name)
    );
    """,
]

_LOCK_ID = 0x6F7663  # pg_advisory_xact_lock key of the migrations ("ovc")
_pools: dict[str, ConnectionPool[Any]] = {}
_migrated: set[str] = set()
_lock = threading.Lock()
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")


_conninfos: dict[int, tuple[ResourceURL, str]] = {}


def conninfo(location: ResourceURL) -> str:
    """libpq connection string for ``location``: host, port, database, and libpq options."""
    found = _conninfos.get(id(location))
    if found is None or found[0] is not location:
        found = _conninfos[id(location)] = (location, _conninfo(location))
    return found[1]


def _conninfo(location: ResourceURL) -> str:
    if not location.host:
        raise ConfigError(f"{location}: name the server, e.g. postgresql://db.internal:5432/app")
    host, _, port = location.host.partition(":")
    parts = {"host": host, "dbname": location.path.strip("/") or "postgres"}
    if port:
        parts["port"] = port
    for option in ("sslmode", "connect_timeout", "application_name", "options"):
        value = location.option(option)
        if value is not None:
            parts[option] = value
    parts.setdefault("connect_timeout", "5")
    parts.setdefault("application_name", "overcast")
    return psycopg.conninfo.make_conninfo(**parts)


def resource_name(location: ResourceURL, name: str | None, option: str, default: str) -> str:
    value = location.option(option) or name or default
    if not _NAME.match(value):
        raise ConfigError(f"{location}: {option} {value!r} must be 1-200 letters, digits and . _ : / -")
    return value


def pool(location: ResourceURL) -> ConnectionPool[Any]:
    """The shared pool for ``location``'s server and database, the schema migrated."""
    info = conninfo(location)
    found = _pools.get(info)
    if found is None:
        with _lock:
            found = _pools.get(info)
            if found is None:
                size = int(location.option("pool_size") or "10")
                found = ConnectionPool(
                    info,
                    min_size=1,
                    max_size=size,
                    kwargs={"autocommit": True},
                    open=True,
                    name="overcast",
                    timeout=float(location.option("pool_timeout") or "30"),
                )
                _pools[info] = found
    return found


def migrate(location: ResourceURL, resource: str) -> None:
    """Bring the schema to the latest version, once per process and server."""
    info = conninfo(location)
    if info in _migrated:
        return
    with connection(location, resource, "migrate the schema") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute("CREATE TABLE IF NOT EXISTS overcast_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM overcast_schema").fetchone()
        current = row[0] if row and row[0] is not None else 0
        for version, statement in enumerate(MIGRATIONS, start=1):
            if version > current:
                conn.execute(statement)
                conn.execute("INSERT INTO overcast_schema (version) VALUES (%s)", (version,))
    _migrated.add(info)


def connection(location: ResourceURL, resource: str, what: str) -> Connection:
    """A pooled connection; PostgreSQL's errors come out as Overcast's, naming ``what``."""
    return Connection(pool(location), resource, what)


class Connection:
    """``with Connection(pool, resource, what) as conn:`` — a class rather than a generator
    context manager, as it wraps every statement (a generator costs microseconds more)."""

    __slots__ = ("_borrowed", "pool", "resource", "what")

    def __init__(self, pool: ConnectionPool[Any], resource: str, what: str) -> None:
        self.pool, self.resource, self.what = pool, resource, what

    def __enter__(self) -> psycopg.Connection[Any]:
        self._borrowed = self.pool.connection()
        try:
            conn: psycopg.Connection[Any] = self._borrowed.__enter__()
        except BaseException as exc:
            raise self._mapped(exc) from exc
        return conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            self._borrowed.__exit__(kind, exc, tb)
        except BaseException as late:
            raise self._mapped(late) from late
        if exc is not None:
            mapped = self._mapped(exc)
            if mapped is not exc:
                raise mapped from exc

    def _mapped(self, exc: BaseException) -> BaseException:
        resource, what = self.resource, self.what
        if isinstance(exc, (PoolTimeout, psycopg.OperationalError)):
            return Unavailable(f"{resource}: PostgreSQL: cannot {what}: {exc}", resource=resource)
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return PermissionDenied(f"{resource}: PostgreSQL: cannot {what}: {exc}", resource=resource)
        if isinstance(exc, pg_errors.UndefinedTable):
            return NotFound(f"{resource}: PostgreSQL: cannot {what}: {exc}", resource=resource)
        if isinstance(exc, pg_errors.UntranslatableCharacter):
            return InvalidArgument(
                f"{resource}: PostgreSQL cannot store this value ({what}): jsonb holds no \\u0000: {exc}",
                resource=resource,
            )
        if isinstance(exc, psycopg.Error):
            return ProviderError(f"{resource}: PostgreSQL: cannot {what}: {exc}", resource=resource)
        return exc
