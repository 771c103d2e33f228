"""Connection pools, the schema and its versioned migrations, and error mapping.

Credentials never sit in URLs: libpq reads them from its environment (``PGUSER``,
``PGPASSWORD``, ``PGPASSFILE``, ``PGSSLMODE``, ...), as every PostgreSQL tool does.
The schema is created on first use and migrated under an advisory lock, so processes
starting together apply each migration once.

Two pools per database: psycopg_pool's ``ConnectionPool`` for the blocking hooks
(``handle.sync``), and a :class:`LoopPool` of ``psycopg.AsyncConnection`` per event loop for
the async ones, so async callers talk to PostgreSQL on their own loop instead of hopping to
a worker thread (measured in benchmarks/postgres_providers.py). Async connections belong to
the loop that opened them, hence one pool per loop; a closed loop's pool is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import re
import select
import threading
import weakref
from collections.abc import AsyncIterator
from time import monotonic
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import ConfigError, InvalidArgument, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.base import Resource
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


#: Seconds a call may take to get a connection (the URL option ``timeout``): connecting to a
#: managed PostgreSQL with TLS and password or IAM authentication takes up to a second, and
#: libpq counts ``connect_timeout`` in whole seconds (at least 2), so 5 s: a cold connection
#: comes up, a server that does not answer is given up while a function still has time.
DEFAULT_TIMEOUT = 5.0


def deadline(location: ResourceURL) -> float:
    """The URL option ``timeout``: seconds to connect, and to wait for a pooled connection."""
    return location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True)


def _conninfo(location: ResourceURL) -> str:
    if not location.host:
        raise ConfigError(f"{location}: name the server, e.g. postgresql://db.internal:5432/app")
    host, _, port = location.host.partition(":")
    parts = {"host": host, "dbname": location.path.strip("/") or "postgres"}
    if port:
        parts["port"] = port
    if location.username is not None:
        parts["user"] = location.username  # from a URL given by the environment (``${DATABASE_URL}``)
    if location.password is not None:
        parts["password"] = location.password
    for option in ("sslmode", "connect_timeout", "application_name", "options"):
        value = location.option(option)
        if value is not None:
            parts[option] = value
    # libpq takes whole seconds and treats 1 as 2; a dead peer with data unacknowledged is
    # given up after the deadline too (Linux's TCP_USER_TIMEOUT, in milliseconds).
    seconds = deadline(location)
    parts.setdefault("connect_timeout", str(max(2, math.ceil(seconds))))
    parts.setdefault("tcp_user_timeout", str(math.ceil(seconds * 1000)))
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
                found = _pools[info] = _Pool(info, open=True, **_pool_options(location))
    return found


class _Pool(ConnectionPool[Any]):
    """psycopg_pool's pool, noting whether its last attempt to connect failed: while it does,
    a caller tries the server once itself and fails at once if it refuses (the pool would
    keep it waiting the whole ``pool_timeout`` while its worker retries in the background)."""

    down = False

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            conn = super()._connect(timeout)
        except BaseException:
            self.down = True
            raise
        self.down = False
        return conn

    def reachable(self) -> None:
        """Connect once, directly: raises psycopg's error now if the server still fails."""
        psycopg.connect(str(self.conninfo), autocommit=True).close()
        self.down = False


#: How often a caller waiting for a pooled connection looks whether the pool's worker failed.
_WAIT_SLICE = 0.1


def _getconn(pool: ConnectionPool[Any]) -> Any:
    """A connection from ``pool`` within its ``timeout``, or the server's own error as soon as
    the pool's worker fails to connect (a refused connection fails in milliseconds)."""
    if not isinstance(pool, _Pool):
        return pool.getconn()
    if pool.down:
        pool.reachable()
    deadline = monotonic() + pool.timeout
    while True:
        left = deadline - monotonic()
        try:
            return pool.getconn(timeout=max(min(_WAIT_SLICE, left), 0.001))
        except PoolTimeout:
            if left <= _WAIT_SLICE:
                raise PoolTimeout(f"couldn't get a connection after {pool.timeout:.2f} sec") from None
            if pool.down:
                pool.reachable()


#: Seconds a pooled connection sits unused before a checkout looks whether the server
#: dropped it (a restart or failover takes longer; checking costs a ``select``, ~1 µs).
IDLE_CHECK = 0.5


def stale(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether a connection taken from a pool must be replaced: it sat unused for
    :data:`IDLE_CHECK` seconds and the server dropped it meanwhile."""
    if monotonic() - getattr(conn, "_overcast_released", 0.0) < IDLE_CHECK:
        return conn.closed
    return dropped(conn)


def dropped(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection is gone: the server closed it, or sent the notice that it
    will (a restart, a failover, ``pg_terminate_backend``, an idle timeout). An idle
    connection has nothing to read, so a readable socket means exactly that; checking is
    one ``select`` with no wait, where a round trip would cost a query."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)


def _pool_options(location: ResourceURL, resource: str | None = None) -> dict[str, Any]:
    return {
        "min_size": 1,
        "max_size": location.option_int("pool_size", 10, minimum=1, resource=resource),
        "kwargs": {"autocommit": True},
        "name": "overcast",
        # a pool that cannot connect waits for a connection no longer than a call may take
        "timeout": location.option_seconds("pool_timeout", deadline(location), positive=True, resource=resource),
    }


class LoopPool:
    """The async connections of one event loop: idle ones kept for reuse, at most
    ``pool_size`` in use, a wait for one bounded by ``pool_timeout``. No background tasks
    (psycopg_pool's ``AsyncConnectionPool`` runs workers on the loop, which keep an
    ``asyncio.run()`` from ending when the loop shuts down with the pool open), and no
    await on the way in or out while a connection is free."""

    __slots__ = ("closer", "idle", "in_use", "info", "size", "timeout", "waiters")

    def __init__(self, info: str, size: int, timeout: float) -> None:
        self.info, self.size, self.timeout = info, size, timeout
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.in_use = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closer: Any = None

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        if self.in_use >= self.size:
            await self._wait()
        self.in_use += 1
        try:
            idle = self.idle
            while idle:
                conn = idle.pop()
                if not stale(conn):
                    return conn
                conn.pgconn.finish()  # gone already: nothing to say to the server
            return await psycopg.AsyncConnection.connect(self.info, autocommit=True)
        except BaseException:
            self._free()
            raise

    async def _wait(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while self.in_use >= self.size:
            waiter: asyncio.Future[None] = loop.create_future()
            self.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - loop.time(), 0))
            except TimeoutError:
                raise PoolTimeout(f"no connection free within {self.timeout} s (pool_size {self.size})") from None
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    def _free(self) -> None:
        self.in_use -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def release(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn.closed or conn.broken or conn.pgconn.transaction_status != TransactionStatus.IDLE:
            try:
                await conn.close()
            finally:
                self._free()
        else:
            conn._overcast_released = monotonic()  # type: ignore[attr-defined]
            self.idle.append(conn)
            self._free()

    async def close(self) -> None:
        """Close the idle connections (the loop is shutting down)."""
        idle, self.idle = self.idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    def discard(self) -> None:
        """Close the idle connections of a loop that is gone (without it: libpq directly)."""
        for conn in self.idle:
            conn.pgconn.finish()
        self.idle.clear()


#: id(loop) -> (the loop, weakly; its pools by conninfo)
_async_pools: dict[int, tuple[weakref.ref[asyncio.AbstractEventLoop], dict[str, LoopPool]]] = {}


def async_pool(location: ResourceURL) -> LoopPool:
    """The running loop's pool for ``location``'s server and database."""
    info = conninfo(location)
    loop = asyncio.get_running_loop()
    entry = _async_pools.get(id(loop))
    if entry is None or entry[0]() is not loop:
        _forget_closed_loops()
        entry = _async_pools[id(loop)] = (weakref.ref(loop), {})
    found = entry[1].get(info)
    if found is None:
        options = _pool_options(location)
        found = entry[1][info] = LoopPool(info, options["max_size"], options["timeout"])
        found.closer = _closer(found)
        with contextlib.suppress(StopIteration):
            # Started here, on the loop's thread: the loop now holds it, and its shutdown
            # (asyncio.run's shutdown_asyncgens) closes it, closing the idle connections.
            found.closer.asend(None).send(None)
    return found


async def _closer(pool: LoopPool) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await pool.close()


def _forget_closed_loops() -> None:
    for loop_id, (ref, pools) in list(_async_pools.items()):
        loop = ref()
        if loop is None or loop.is_closed():
            del _async_pools[loop_id]
            for found in pools.values():
                found.discard()


async def amigrate(location: ResourceURL, resource: str) -> None:
    """:func:`migrate` on the running loop's pool."""
    info = conninfo(location)
    if info in _migrated:
        return
    async with AsyncConnection(location, resource, "migrate the schema") as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        await conn.execute(_SCHEMA_TABLE)
        row = await (await conn.execute(_CURRENT)).fetchone()
        current = row[0] if row and row[0] is not None else 0
        for version, statement in enumerate(MIGRATIONS, start=1):
            if version > current:
                await conn.execute(statement)
                await conn.execute(_RECORD, (version,))
    _migrated.add(info)


_SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS overcast_schema (version integer NOT NULL)"
_CURRENT = "SELECT max(version) FROM overcast_schema"
_RECORD = "INSERT INTO overcast_schema (version) VALUES (%s)"


def migrate(location: ResourceURL, resource: str) -> None:
    """Bring the schema to the latest version, once per process and server."""
    info = conninfo(location)
    if info in _migrated:
        return
    with connection(location, resource, "migrate the schema") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(_SCHEMA_TABLE)
        row = conn.execute(_CURRENT).fetchone()
        current = row[0] if row and row[0] is not None else 0
        for version, statement in enumerate(MIGRATIONS, start=1):
            if version > current:
                conn.execute(statement)
                conn.execute(_RECORD, (version,))
    _migrated.add(info)


def connection(location: ResourceURL, resource: str, what: str) -> Connection:
    """A pooled connection; PostgreSQL's errors come out as Overcast's, naming ``what``."""
    return Connection(pool(location), resource, what)


class Connection:
    """``with Connection(pool, resource, what) as conn:`` — a class over ``getconn`` and
    ``putconn`` rather than the pool's generator context manager, as it wraps every
    statement (a generator costs microseconds more)."""

    __slots__ = ("_borrowed", "pool", "resource", "what")

    def __init__(self, pool: ConnectionPool[Any], resource: str, what: str) -> None:
        self.pool, self.resource, self.what = pool, resource, what

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            conn: psycopg.Connection[Any] = _getconn(self.pool)
            while stale(conn):  # the server closed it while it sat in the pool
                conn.pgconn.finish()
                self.pool.putconn(conn)  # closed: the pool discards it and opens another
                conn = self.pool.getconn()
        except BaseException as exc:
            raise self._mapped(exc) from exc
        self._borrowed = conn
        return conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        # putconn rolls back a transaction left open and replaces a broken connection
        try:
            self._borrowed._overcast_released = monotonic()  # type: ignore[attr-defined]
            self.pool.putconn(self._borrowed)
        except BaseException as late:
            raise self._mapped(late) from late
        if exc is not None:
            mapped = self._mapped(exc)
            if mapped is not exc:
                raise mapped from exc

    def _mapped(self, exc: BaseException) -> BaseException:
        return mapped(exc, self.resource, self.what)


class AsyncConnection:
    """``async with AsyncConnection(location, resource, what) as conn:``, as :class:`Connection`,
    on the running loop's :class:`LoopPool`; with ``owner``, the schema is checked first."""

    __slots__ = ("_borrowed", "_pool", "location", "owner", "resource", "what")

    def __init__(self, location: ResourceURL, resource: str, what: str, owner: PostgresResource | None = None) -> None:
        self.location, self.resource, self.what, self.owner = location, resource, what, owner

    async def __aenter__(self) -> psycopg.AsyncConnection[Any]:
        try:
            owner = self.owner
            if owner is not None and not owner._migrated:
                await amigrate(self.location, self.resource)
                owner._migrated = True
            pool = self._pool = async_pool(self.location)
            conn = self._borrowed = await pool.acquire()
        except BaseException as exc:
            raise mapped(exc, self.resource, self.what) from exc
        return conn

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            await self._pool.release(self._borrowed)
        except BaseException as late:
            raise mapped(late, self.resource, self.what) from late
        if exc is not None:
            better = mapped(exc, self.resource, self.what)
            if better is not exc:
                raise better from exc


def mapped(exc: BaseException, resource: str, what: str) -> BaseException:
    """PostgreSQL's and the pool's errors as Overcast's, naming the resource and ``what``."""
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


class PostgresResource(Resource):
    """What the PostgreSQL providers share: connections (sync and async) after the schema
    check, ``create()`` (the schema) and ``ping()``."""

    _migrated = False

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        _pool_options(self.location, self.name)  # a bad pool option fails at open, not at first use

    def _conn(self, what: str) -> Connection:
        if not self._migrated:
            migrate(self.location, self.name)
            self._migrated = True
        return connection(self.location, self.name, what)

    def _aconn(self, what: str) -> AsyncConnection:
        return AsyncConnection(self.location, self.name, what, self)

    async def create(self) -> None:
        await amigrate(self.location, self.name)
        self._migrated = True

    def _create_blocking(self) -> None:
        migrate(self.location, self.name)
        self._migrated = True

    async def ping(self) -> None:
        async with AsyncConnection(self.location, self.name, "ping") as conn:
            await conn.execute("SELECT 1")

    def _ping_blocking(self) -> None:
        with connection(self.location, self.name, "ping") as conn:
            conn.execute("SELECT 1")
