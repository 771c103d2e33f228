"""Key-value documents in one SQLite file: ``sqlite:///data/app.db?table=users``.

The file is in WAL mode with ``synchronous=NORMAL``: readers never block the writer,
and a write that returned survives a crash of the process (the last writes may be
lost if the machine loses power, as with any WAL database at that level). Each
thread has its own connection, and several processes may share the file.

Every write is one SQL statement (or, for ``put_many``, one ``BEGIN IMMEDIATE``
transaction; ``get_many`` reads one snapshot), so the condition of a conditional write is checked and the row
written under SQLite's write lock: threads and processes racing on one version see
exactly one winner. Versions are a random per-process prefix and a counter, so a
version never repeats for a key, even after delete and re-create.

URL options:
    table: the table to keep the documents in (default ``kv``); several stores may
        share one file with different tables.

Expired items are invisible to every read; they are deleted as writes go by.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, Conflict, InvalidArgument, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.keys import prefix_upper_bound
from ...resources.kv import Item, KeyValueStore, Page
from ...resources.url import ResourceURL
from ...resources.versions import new_version

__all__ = ["SQLiteKeyValueStore"]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_BUSY_TIMEOUT = 30.0
_PURGE_EVERY = 1000
_GET_MANY_CHUNK = 500

_UNAVAILABLE = frozenset(
    {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL"}
)
_DENIED = frozenset({"SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"})

# -- connections after fork ------------------------------------------------------------

_stores: weakref.WeakSet[SQLiteKeyValueStore] = weakref.WeakSet()
_inherited: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    """A forked child starts with fresh connections; it never touches the parent's."""
    for store in list(_stores):
        # Closing an inherited connection could checkpoint or drop the parent's WAL: keep them.
        _inherited.extend(store._connections)
        store._connections = []
        store._local = threading.local()
        store._lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _busy(exc: sqlite3.Error) -> bool:
    """The statement could not take the lock (another writer holds it) and changed nothing."""
    return getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc)


def _expiry(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class SQLiteKeyValueStore(KeyValueStore):
    """JSON documents in a SQLite table, shared by threads and processes.

    Capabilities: ``ttl``, ``ordered_scan``, ``multiprocess``. Page cursors are the
    last key returned. The file, its folder and the table are created on first use.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"ttl", "ordered_scan", "multiprocess"})
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.path: Path = self.location.local_path()
        table = self.location.option("table", "kv") or "kv"
        if not _TABLE_NAME.match(table):
            raise ConfigError(
                f"{self.name}: table {table!r} in {self.location} must be letters, digits and _ "
                "(at most 63), starting with a letter or _"
            )
        self.table = table
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        t = f'"{table}"'
        live = "(expires_at IS NULL OR expires_at > ?)"
        columns = "key, value, version, expires_at"
        self._sql_schema = (
            f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
            "version TEXT NOT NULL, expires_at REAL) WITHOUT ROWID",
            f'CREATE INDEX IF NOT EXISTS "{table}_expiry" ON {t} (expires_at) WHERE expires_at IS NOT NULL',
        )
        self._sql_get = f"SELECT value, version, expires_at FROM {t} WHERE key = ? AND {live}"
        self._sql_put = (
            f"INSERT INTO {t} ({columns}) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value, version = excluded.version, expires_at = excluded.expires_at"
        )
        self._sql_put_absent = self._sql_put + " WHERE expires_at IS NOT NULL AND expires_at <= ?"
        self._sql_put_version = (
            f"UPDATE {t} SET value = ?, version = ?, expires_at = ? WHERE key = ? AND version = ? AND {live}"
        )
        self._sql_version = f"SELECT version FROM {t} WHERE key = ? AND {live}"
        self._sql_delete = f"DELETE FROM {t} WHERE key = ? RETURNING expires_at"
        self._sql_delete_version = f"DELETE FROM {t} WHERE key = ? AND version = ? AND {live}"
        self._sql_purge = f"DELETE FROM {t} WHERE expires_at IS NOT NULL AND expires_at <= ?"
        self._sql_scan = {
            (bounded, after): f"SELECT {columns} FROM {t} WHERE key >= ?"
            + (" AND key < ?" if bounded else "")
            + (" AND key > ?" if after else "")
            + f" AND {live} ORDER BY key LIMIT ?"
            for bounded in (False, True)
            for after in (False, True)
        }
        self._sql_get_many = f"SELECT {columns} FROM {t} WHERE {live} AND key IN "
        self._writes = 0
        _stores.add(self)

    # -- connections ---------------------------------------------------------------------

    def _connect(self, slot: str = "conn", timeout: float = _BUSY_TIMEOUT) -> sqlite3.Connection:
        """Open this thread's connection, creating the file and table if they are missing.

        ``slot`` names it in the thread's locals: ``conn`` waits up to ``timeout`` for the
        write lock; ``eager`` (timeout 0) is the event loop's first try at a write.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._os_error(exc) from exc
        try:
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.table,)
            ).fetchone()
            if exists is None:
                self._make_schema(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, None) from exc
        setattr(self._local, slot, conn)
        with self._lock:
            self._connections.append(conn)
        return conn

    def _make_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in self._sql_schema:
                conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        return conn

    def close(self) -> None:
        """Close every connection this store opened; the next use opens new ones."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _create_blocking(self) -> None:
        conn = self._conn()
        try:
            self._make_schema(conn)
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc

    def _ping_blocking(self) -> None:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc

    # -- errors --------------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error, key: str | None) -> ProviderError:
        about = f"{self.name}: SQLite {self.path}" + (f", key {key!r}" if key is not None else "")
        code = getattr(exc, "sqlite_errorname", "")
        message = f"{about}: {exc}"
        if code in _UNAVAILABLE or "locked" in str(exc) or "unable to open" in str(exc):
            return Unavailable(message, resource=self.name)
        if code in _DENIED or "readonly" in str(exc):
            return PermissionDenied(message, resource=self.name)
        if "no such table" in str(exc):
            return NotFound(message, resource=self.name)
        return ProviderError(message, resource=self.name)

    def _os_error(self, exc: OSError) -> ProviderError:
        message = f"{self.name}: cannot create the folder of {self.path}: {exc}"
        if isinstance(exc, PermissionError):
            return PermissionDenied(message, resource=self.name)
        return Unavailable(message, resource=self.name)

    def _conflict(self, conn: sqlite3.Connection, key: str, if_version: str | None, now: float) -> Conflict:
        if if_version is None:
            return Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
        row = conn.execute(self._sql_version, (key, now)).fetchone()
        found = "is absent" if row is None else f"is at version {row[0]}"
        return Conflict(f"{self.name}: key {key!r} {found}, not at version {if_version}", resource=self.name)

    # -- hooks ---------------------------------------------------------------------------

    async def _get(self, key: str) -> Item | None:
        # A read in WAL mode never waits for a writer, and takes microseconds: handing it to a
        # worker thread would cost ten times the read (benchmarks/kv_sqlite.py), so it runs here.
        return self._get_blocking(key)

    def _get_blocking(self, key: str) -> Item | None:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        try:
            row = conn.execute(self._sql_get, (key, time.time())).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc, key) from exc
        if row is None:
            return None
        return Item(key, json.loads(row[0]), row[1], None if row[2] is None else _expiry(row[2]))

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        # A write takes microseconds and a thread hop ten times that (benchmarks/kv_sqlite.py):
        # try it here without waiting for the write lock, and go to a worker thread, which
        # waits, only when another writer holds the lock. A busy statement changed nothing.
        try:
            conn: sqlite3.Connection = self._local.eager
        except AttributeError:
            conn = self._connect("eager", 0.0)
        try:
            return self._put_on(conn, key, data, if_version, if_absent, expires_at)
        except sqlite3.Error as exc:
            if not _busy(exc):
                raise self._error(exc, key) from exc
        return await self._call(self._put_blocking, key, value, data, if_version, if_absent, expires_at)

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        try:
            conn: sqlite3.Connection = self._local.conn
        except AttributeError:
            conn = self._connect()
        try:
            return self._put_on(conn, key, data, if_version, if_absent, expires_at)
        except sqlite3.Error as exc:
            raise self._error(exc, key) from exc

    def _put_on(
        self,
        conn: sqlite3.Connection,
        key: str,
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        """One autocommitted write; raises ``sqlite3.Error`` as it comes (callers map it)."""
        version = new_version()
        expiry = None if expires_at is None else expires_at.timestamp()
        if if_version is not None:
            now = time.time()
            cursor = conn.execute(self._sql_put_version, (data, version, expiry, key, if_version, now))
        elif if_absent:
            now = time.time()
            cursor = conn.execute(self._sql_put_absent, (key, data, version, expiry, now))
        else:
            conn.execute(self._sql_put, (key, data, version, expiry))
            cursor = None
        if cursor is not None and cursor.rowcount != 1:
            raise self._conflict(conn, key, if_version, now)
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            # Housekeeping after the write is done: never let it fail (or retry) the write.
            with contextlib.suppress(sqlite3.Error):
                conn.execute(self._sql_purge, (time.time(),))
        return version

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        conn = self._conn()
        now = time.time()
        try:
            if if_version is not None:
                if conn.execute(self._sql_delete_version, (key, if_version, now)).rowcount != 1:
                    raise self._conflict(conn, key, if_version, now)
                return True
            row = conn.execute(self._sql_delete, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc, key) from exc
        return row is not None and (row[0] is None or row[0] > now)

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
        upper = prefix_upper_bound(prefix) if prefix else None
        params: list[object] = [prefix]
        if upper is not None:
            params.append(upper)
        if cursor is not None:
            params.append(cursor)
        params += [time.time(), limit + 1]
        sql = self._sql_scan[(upper is not None, cursor is not None)]
        try:
            rows = self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc
        more = len(rows) > limit
        items = [Item(k, json.loads(v), ver, _expiry(exp)) for k, v, ver, exp in rows[:limit]]
        return Page(items, items[-1].key if more else None)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        conn = self._conn()
        now = time.time()
        found: dict[str, Item] = {}
        snapshot = len(keys) > _GET_MANY_CHUNK  # several statements read one snapshot
        try:
            if snapshot:
                conn.execute("BEGIN")
            try:
                for start in range(0, len(keys), _GET_MANY_CHUNK):
                    chunk = keys[start : start + _GET_MANY_CHUNK]
                    sql = self._sql_get_many + "(" + ",".join("?" * len(chunk)) + ")"
                    for k, v, ver, exp in conn.execute(sql, [now, *chunk]):
                        found[k] = Item(k, json.loads(v), ver, _expiry(exp))
            finally:
                if snapshot and conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc
        return found

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        conn = self._conn()
        expiry = None if expires_at is None else expires_at.timestamp()
        versions = {key: new_version() for key, _, _ in entries}
        rows = [(key, data, versions[key], expiry) for key, _, data in entries]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(self._sql_put, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc
        return versions
