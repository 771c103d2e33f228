"""``postgresql://HOST:PORT/DBNAME?store=NAME`` as a key-value store of JSON documents.

One table, ``overcast_kv``, holds every store: ``(store, key)`` is the primary key, with
keys as their UTF-8 bytes (``bytea``: byte order, and any character, NUL included), so a
prefix scan is a range on that index.
Documents are ``jsonb``, but for the rare one holding U+0000, which ``jsonb`` cannot
hold: that one is kept as its JSON bytes in ``raw``. A conditional write is one
``INSERT ... ON CONFLICT ... WHERE`` or ``UPDATE ... WHERE`` statement: the check and
the write are atomic. ``put_with_log`` adds a second key's upsert to the write only if
newer in one statement (a data-modifying ``WITH``): one round trip, one transaction.
Expired documents are filtered on every read and deleted now and then by writes.

Each operation exists twice, with the same statements: blocking (``handle.sync``, on the
sync pool) and async (on the running loop's async pool).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, ClassVar

from ...errors import Conflict
from ...resources.kv import ORDER_FIELD, Item, KeyValueStore, LogEntry, Page
from ...resources.url import ResourceURL
from ._db import PostgresResource, resource_name

__all__ = ["PostgresKeyValueStore"]

_LIVE = "(expires_at IS NULL OR expires_at > now())"
_UPSERT = (
    "INSERT INTO overcast_kv (store, key, value, raw, version, expires_at) VALUES (%s, %s, %s::jsonb, %s, %s, %s)"
    " ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, raw = excluded.raw,"
    " version = excluded.version, expires_at = excluded.expires_at"
)
_GET = f"SELECT value, raw, version, expires_at FROM overcast_kv WHERE store = %s AND key = %s AND {_LIVE}"
_UPDATE_IF = (
    "UPDATE overcast_kv SET value = %s::jsonb, raw = %s, version = %s, expires_at = %s"
    f" WHERE store = %s AND key = %s AND version = %s AND {_LIVE}"
)
_INSERT_IF_ABSENT = f"{_UPSERT} WHERE overcast_kv.expires_at IS NOT NULL AND overcast_kv.expires_at <= now()"
# the stored document's order (its ORDER_FIELD string, else ''), compared byte by byte ("C")
_STORED_ORDER = (
    "COALESCE(CASE WHEN overcast_kv.raw IS NOT NULL"
    f" THEN convert_from(overcast_kv.raw, 'UTF8')::json->>'{ORDER_FIELD}'"
    f" WHEN jsonb_typeof(overcast_kv.value->'{ORDER_FIELD}') = 'string' THEN overcast_kv.value->>'{ORDER_FIELD}'"
    " END, '')"
)
_PUT_IF_NEWER = f'{_UPSERT} WHERE overcast_kv.expires_at <= now() OR {_STORED_ORDER} COLLATE "C" < %s::text COLLATE "C"'
# put_with_log: the write only if newer and, if it wrote a row, the log entry's upsert: one
# statement, so one round trip and one transaction (both land or neither)
_PUT_WITH_LOG = (
    f"WITH doc AS ({_PUT_IF_NEWER} RETURNING 1)"
    " INSERT INTO overcast_kv (store, key, value, raw, version, expires_at)"
    " SELECT %s, %s, %s::jsonb, %s, %s, NULL FROM doc"
    " ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, raw = excluded.raw,"
    " version = excluded.version, expires_at = excluded.expires_at"
)
_VERSION = f"SELECT version FROM overcast_kv WHERE store = %s AND key = %s AND {_LIVE}"
_DELETE_IF = f"DELETE FROM overcast_kv WHERE store = %s AND key = %s AND version = %s AND {_LIVE}"
_DELETE = f"DELETE FROM overcast_kv WHERE store = %s AND key = %s RETURNING {_LIVE}"
_SWEEP = "DELETE FROM overcast_kv WHERE store = %s AND expires_at <= now()"
_GET_MANY = (
    f"SELECT key, value, raw, version, expires_at FROM overcast_kv WHERE store = %s AND key = ANY(%s) AND {_LIVE}"
)
_SWEEP_EVERY = 500


def _columns(value: dict[str, Any], data: bytes) -> tuple[str | None, bytes | None]:
    """(value, raw): the JSON text for the jsonb column (already encoded and checked by the
    interface, so not encoded twice), or the JSON bytes of a document holding U+0000."""
    if b"\\u0000" in data:
        return None, data
    return data.decode(), None


def _item(key: str, value: Any, raw: bytes | None, version: str, expires_at: datetime | None) -> Item:
    return Item(key, value if raw is None else json.loads(raw), version, expires_at)


def _items(rows: list[Any]) -> list[Item]:
    return [_item(bytes(row[0]).decode(), *row[1:]) for row in rows]


class PostgresKeyValueStore(PostgresResource, KeyValueStore):
    """JSON documents in PostgreSQL. Options: ``store`` (default: the resource's name),
    ``sslmode``, ``timeout`` (5 s: to connect, and to wait for a pooled connection),
    ``connect_timeout``, ``pool_size`` (10), ``pool_timeout`` (the ``timeout``).

    Capabilities: ``ttl``, ``ordered_scan``, ``multiprocess``, ``put_if_newer`` (one
    ``INSERT ... ON CONFLICT ... WHERE`` comparing the stored document's order),
    ``put_with_log`` (that statement and the log entry's upsert as one statement).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"ttl", "ordered_scan", "multiprocess", "put_if_newer", "put_with_log"}
    )
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "postgres"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._store = resource_name(self.location, name, "store", "kv")
        self._writes = 0

    # -- shared by both faces ---------------------------------------------------------

    def _put_statement(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> tuple[str, tuple[Any, ...], str]:
        version = uuid.uuid4().hex
        doc, raw = _columns(value, data)
        if if_version is not None:
            return _UPDATE_IF, (doc, raw, version, expires_at, self._store, key.encode(), if_version), version
        return (
            (_INSERT_IF_ABSENT if if_absent else _UPSERT),
            (self._store, key.encode(), doc, raw, version, expires_at),
            version,
        )

    def _newer_statement(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> tuple[tuple[Any, ...], str]:
        version = uuid.uuid4().hex
        return (self._store, key.encode(), *_columns(value, data), version, expires_at, order), version

    def _logged_statement(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[tuple[Any, ...], str, str]:
        params, version = self._newer_statement(key, value, data, order, expires_at)
        entry = uuid.uuid4().hex
        return (*params, self._store, log.key.encode(), *_columns(log.value, log.data), entry), version, entry

    def _sweep_due(self) -> bool:
        self._writes += 1
        return self._writes % _SWEEP_EVERY == 0

    def _conflict(self, key: str, if_version: str | None, row: Any) -> Conflict:
        if if_version is None:
            return Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
        found = "is absent" if row is None else f"is at version {row[0]}"
        return Conflict(f"{self.name}: key {key!r} {found}, not at version {if_version}", resource=self.name)

    def _scan_statement(self, prefix: str, limit: int, cursor: str | None) -> tuple[str, list[Any]]:
        clauses = ["store = %s", _LIVE]
        params: list[Any] = [self._store]
        if prefix:
            low = prefix.encode()
            clauses.append("key >= %s AND key < %s")  # 0xFF never occurs in UTF-8: the last byte can grow
            params += [low, low[:-1] + bytes([low[-1] + 1])]
        if cursor is not None:
            clauses.append("key > %s")
            params.append(cursor.encode())
        params.append(limit + 1)
        sql = f"SELECT key, value, raw, version, expires_at FROM overcast_kv WHERE {' AND '.join(clauses)}"
        return sql + " ORDER BY key LIMIT %s", params

    def _put_many_rows(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> tuple[dict[str, str], list[tuple[Any, ...]]]:
        versions = {key: uuid.uuid4().hex for key, _, _ in entries}
        rows = [
            (self._store, key.encode(), *_columns(value, data), versions[key], expires_at)
            for key, value, data in entries
        ]
        return versions, rows

    # -- blocking (handle.sync) ---------------------------------------------------------

    def _get_blocking(self, key: str) -> Item | None:
        with self._conn(f"read key {key!r}") as conn:
            row = conn.execute(_GET, (self._store, key.encode())).fetchone()
        return None if row is None else _item(key, *row)

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        sql, params, version = self._put_statement(key, value, data, if_version, if_absent, expires_at)
        with self._conn(f"write key {key!r}") as conn:
            if conn.execute(sql, params).rowcount != 1:
                row = conn.execute(_VERSION, (self._store, key.encode())).fetchone() if if_version else None
                raise self._conflict(key, if_version, row)
            if self._sweep_due():
                conn.execute(_SWEEP, (self._store,))
        return version

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        params, version = self._newer_statement(key, value, data, order, expires_at)
        with self._conn(f"write key {key!r}") as conn:
            applied = conn.execute(_PUT_IF_NEWER, params).rowcount == 1
        return version if applied else None

    def _put_with_log_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        params, version, entry = self._logged_statement(key, value, data, order, expires_at, log)
        with self._conn(f"write key {key!r} with its log entry") as conn:
            applied = conn.execute(_PUT_WITH_LOG, params).rowcount == 1
        return (version, entry) if applied else None

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        with self._conn(f"delete key {key!r}") as conn:
            if if_version is not None:
                if conn.execute(_DELETE_IF, (self._store, key.encode(), if_version)).rowcount != 1:
                    raise self._conflict(
                        key, if_version, conn.execute(_VERSION, (self._store, key.encode())).fetchone()
                    )
                return True
            row = conn.execute(_DELETE, (self._store, key.encode())).fetchone()
        return bool(row and row[0])

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        sql, params = self._scan_statement(prefix, limit, cursor)
        with self._conn(f"scan prefix {prefix!r}") as conn:
            rows = conn.execute(sql, params).fetchall()
        items = _items(rows[:limit])
        return Page(items, items[-1].key if len(rows) > limit else None)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        with self._conn(f"read {len(keys)} keys") as conn:
            rows = conn.execute(_GET_MANY, (self._store, [key.encode() for key in keys])).fetchall()
        return {item.key: item for item in _items(rows)}

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        versions, rows = self._put_many_rows(entries, expires_at)
        with self._conn(f"write {len(entries)} keys") as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(_UPSERT, rows)
        return versions

    # -- async, on the running loop --------------------------------------------------------

    async def _get(self, key: str) -> Item | None:
        async with self._aconn(f"read key {key!r}") as conn:
            row = await (await conn.execute(_GET, (self._store, key.encode()))).fetchone()
        return None if row is None else _item(key, *row)

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        sql, params, version = self._put_statement(key, value, data, if_version, if_absent, expires_at)
        async with self._aconn(f"write key {key!r}") as conn:
            if (await conn.execute(sql, params)).rowcount != 1:
                row = (
                    await (await conn.execute(_VERSION, (self._store, key.encode()))).fetchone() if if_version else None
                )
                raise self._conflict(key, if_version, row)
            if self._sweep_due():
                await conn.execute(_SWEEP, (self._store,))
        return version

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        params, version = self._newer_statement(key, value, data, order, expires_at)
        async with self._aconn(f"write key {key!r}") as conn:
            applied = (await conn.execute(_PUT_IF_NEWER, params)).rowcount == 1
        return version if applied else None

    async def _put_with_log(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        params, version, entry = self._logged_statement(key, value, data, order, expires_at, log)
        async with self._aconn(f"write key {key!r} with its log entry") as conn:
            applied = (await conn.execute(_PUT_WITH_LOG, params)).rowcount == 1
        return (version, entry) if applied else None

    async def _delete(self, key: str, if_version: str | None) -> bool:
        async with self._aconn(f"delete key {key!r}") as conn:
            if if_version is not None:
                if (await conn.execute(_DELETE_IF, (self._store, key.encode(), if_version))).rowcount != 1:
                    row = await (await conn.execute(_VERSION, (self._store, key.encode()))).fetchone()
                    raise self._conflict(key, if_version, row)
                return True
            row = await (await conn.execute(_DELETE, (self._store, key.encode()))).fetchone()
        return bool(row and row[0])

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        sql, params = self._scan_statement(prefix, limit, cursor)
        async with self._aconn(f"scan prefix {prefix!r}") as conn:
            rows = await (await conn.execute(sql, params)).fetchall()
        items = _items(rows[:limit])
        return Page(items, items[-1].key if len(rows) > limit else None)

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        async with self._aconn(f"read {len(keys)} keys") as conn:
            rows = await (await conn.execute(_GET_MANY, (self._store, [key.encode() for key in keys]))).fetchall()
        return {item.key: item for item in _items(rows)}

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        versions, rows = self._put_many_rows(entries, expires_at)
        async with self._aconn(f"write {len(entries)} keys") as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(_UPSERT, rows)
        return versions
