"""Key-value documents in one SQLite file: ``sqlite:///data/app.db?table=users``.

The file is in WAL mode: readers never block the writer. A write that returned is on
disk: it survives a crash of the process and, with the default ``synchronous=full``,
of the machine (see :mod:`._sqlite` for ``synchronous=normal``). Each thread has its
own connection, and several processes may share the file.

Every write is one SQL statement (or, for ``put_many`` and ``put_with_log``, one ``BEGIN IMMEDIATE``
transaction; ``get_many`` reads one snapshot), so the condition of a conditional write is checked and the row
written under SQLite's write lock: threads and processes racing on one version see
exactly one winner. Versions are a random per-process prefix and a counter, so a
version never repeats for a key, even after delete and re-create.

URL options:
    table: the table to keep the documents in (default ``kv``); several stores may
        share one file with different tables.
    synchronous: ``full`` (default) or ``normal``: see :mod:`._sqlite`.
    timeout: how long a call waits for another process's lock (default 30 s) before it
        is ``Unavailable``; within it a write ends in success or ``Conflict``, however
        many processes race (see :mod:`._sqlite`).

Expired items are invisible to every read; they are deleted as writes go by.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, Conflict, InvalidArgument, ProviderError
from ...resources.keys import prefix_upper_bound
from ...resources.kv import ORDER_FIELD, Item, KeyValueStore, LogEntry, Page
from ...resources.url import ResourceURL
from ...resources.versions import new_version
from ._sqlite import SQLiteFile, ThreadConnections, busy

__all__ = ["SQLiteKeyValueStore"]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PURGE_EVERY = 1000
_GET_MANY_CHUNK = 500


def _expiry(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class SQLiteKeyValueStore(KeyValueStore):
    """JSON documents in a SQLite table, shared by threads and processes.

    Capabilities: ``ttl``, ``ordered_scan``, ``multiprocess``, ``put_if_newer`` (one upsert
    whose ``WHERE`` compares the stored document's order, read with ``json_extract``),
    ``put_with_log`` (that upsert and the log entry's in one transaction).
    Page cursors are the last key returned. The file, its folder and the table are created
    on first use.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"ttl", "ordered_scan", "multiprocess", "put_if_newer", "put_with_log"}
    )
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._file = SQLiteFile(self.location, self.name)
        self.path: Path = self._file.path
        table = self.location.option("table", "kv") or "kv"
        if not _TABLE_NAME.match(table):
            raise ConfigError(
                f"{self.name}: table {table!r} in {self.location} must be letters, digits and _ "
                "(at most 63), starting with a letter or _"
            )
        self.table = table
        self._threads = ThreadConnections(self._connect)
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
        # text comparison in SQLite is by bytes (BINARY collation): code-point order for UTF-8
        self._sql_put_newer = (
            self._sql_put + f" WHERE expires_at <= ? OR coalesce(json_extract(CAST(value AS TEXT), "
            f"'$.{ORDER_FIELD}'), '') < ?"
        )
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

    # -- connections ---------------------------------------------------------------------

    def _connect(self, wait: bool) -> sqlite3.Connection:
        """A new connection, creating the file and table if they are missing.

        Each thread keeps two (:class:`ThreadConnections` slots): ``conn`` waits up to the
        deadline for the write lock; ``eager`` (``wait=False``) is the event loop's first
        try at a write.
        """
        return self._file.connect(wait, self._make_schema_if_missing)

    def _make_schema_if_missing(self, conn: sqlite3.Connection) -> None:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.table,)).fetchone():
            return
        self._make_schema(conn)

    def _make_schema(self, conn: sqlite3.Connection) -> None:
        with self._file.transaction(conn):
            for statement in self._sql_schema:
                conn.execute(statement)

    def _conn(self) -> sqlite3.Connection:
        try:
            conn: sqlite3.Connection = self._threads.local.conn
        except AttributeError:
            conn = self._threads.open()
        return conn

    @property
    def _connections(self) -> list[sqlite3.Connection]:
        return self._threads.connections

    def close(self) -> None:
        """Close every connection this store opened; the next use opens new ones."""
        self._threads.close()

    def _create_blocking(self) -> None:
        self._make_schema(self._conn())

    def _ping_blocking(self) -> None:
        conn = self._conn()
        self._file.run(conn, lambda: conn.execute("SELECT 1").fetchone())

    # -- errors --------------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error, key: str | None) -> ProviderError:
        return self._file.error(exc, key)

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
            conn: sqlite3.Connection = self._threads.local.conn
        except AttributeError:
            conn = self._threads.open()
        try:
            row = conn.execute(self._sql_get, (key, time.time())).fetchone()
        except sqlite3.Error as exc:  # busy only while a WAL file is reset or recovered: try again
            row = self._file.again(exc, conn, lambda: conn.execute(self._sql_get, (key, time.time())).fetchone(), key)
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
            conn: sqlite3.Connection = self._threads.local.eager
        except AttributeError:
            conn = self._threads.open("eager", wait=False)
        try:
            return self._put_on(conn, key, data, if_version, if_absent, expires_at)
        except sqlite3.Error as exc:
            if not busy(exc):
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
            conn: sqlite3.Connection = self._threads.local.conn
        except AttributeError:
            conn = self._threads.open()
        return self._file.run(conn, lambda: self._put_on(conn, key, data, if_version, if_absent, expires_at), key)

    def _put_on(
        self,
        conn: sqlite3.Connection,
        key: str,
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        """One autocommitted write; raises ``sqlite3.Error`` as it comes (callers map it). A
        busy error comes before anything is written: the write may be tried again."""
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

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        # as _put: on the loop without waiting for the write lock, in a worker thread if it is held
        conn: sqlite3.Connection | None = getattr(self._threads.local, "eager", None)
        if conn is None:
            conn = self._threads.open("eager", wait=False)
        try:
            return self._put_newer_on(conn, key, data, order, expires_at)
        except sqlite3.Error as exc:
            if not busy(exc):
                raise self._error(exc, key) from exc
        return await self._call(self._put_if_newer_blocking, key, value, data, order, expires_at)

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        try:
            return self._put_newer_on(self._conn(), key, data, order, expires_at)
        except sqlite3.Error as exc:
            raise self._error(exc, key) from exc

    def _put_newer_on(
        self, conn: sqlite3.Connection, key: str, data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        """One autocommitted upsert, made only if the stored order is lower; its version, or None."""
        version = new_version()
        expiry = None if expires_at is None else expires_at.timestamp()
        cursor = conn.execute(self._sql_put_newer, (key, data, version, expiry, time.time(), order))
        return version if cursor.rowcount == 1 else None

    async def _put_with_log(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        # as _put: on the loop if the write lock is free at once (BEGIN IMMEDIATE fails busy
        # before anything is written), else in a worker thread that waits for it
        conn: sqlite3.Connection | None = getattr(self._threads.local, "eager", None)
        if conn is None:
            conn = self._threads.open("eager", wait=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            if not busy(exc):
                raise self._error(exc, key) from exc
            return await self._call(self._put_with_log_blocking, key, value, data, order, expires_at, log)
        with self._file.mapped(key):
            return self._logged_in(conn, key, data, order, expires_at, log)

    def _put_with_log_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        conn = self._conn()
        self._file.run(conn, lambda: conn.execute("BEGIN IMMEDIATE"), key)
        with self._file.mapped(key):
            return self._logged_in(conn, key, data, order, expires_at, log)

    def _logged_in(
        self,
        conn: sqlite3.Connection,
        key: str,
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        """In the transaction ``conn`` began: the upsert if newer and, if it wrote, the log
        entry's; committed together, or rolled back if either (or the commit) fails."""
        try:
            version = self._put_newer_on(conn, key, data, order, expires_at)
            entry = None if version is None else self._put_on(conn, log.key, log.data, None, False, None)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return None if version is None or entry is None else (version, entry)

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        conn = self._conn()
        return self._file.run(conn, lambda: self._delete_on(conn, key, if_version), key)

    def _delete_on(self, conn: sqlite3.Connection, key: str, if_version: str | None) -> bool:
        now = time.time()
        if if_version is not None:
            if conn.execute(self._sql_delete_version, (key, if_version, now)).rowcount != 1:
                raise self._conflict(conn, key, if_version, now)
            return True
        row = conn.execute(self._sql_delete, (key,)).fetchone()
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
        conn = self._conn()
        rows = self._file.run(conn, lambda: conn.execute(sql, params).fetchall())
        more = len(rows) > limit
        items = [Item(k, json.loads(v), ver, _expiry(exp)) for k, v, ver, exp in rows[:limit]]
        return Page(items, items[-1].key if more else None)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        conn = self._conn()
        return self._file.run(conn, lambda: self._get_many_on(conn, keys))

    def _get_many_on(self, conn: sqlite3.Connection, keys: list[str]) -> dict[str, Item]:
        now = time.time()
        found: dict[str, Item] = {}
        snapshot = len(keys) > _GET_MANY_CHUNK  # several statements read one snapshot
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
        return found

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        conn = self._conn()
        expiry = None if expires_at is None else expires_at.timestamp()
        versions = {key: new_version() for key, _, _ in entries}
        rows = [(key, data, versions[key], expiry) for key, _, data in entries]
        with self._file.transaction(conn):
            conn.executemany(self._sql_put, rows)
        return versions
