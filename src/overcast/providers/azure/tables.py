"""``azuretables://TABLE``: JSON documents in Azure Table storage (or Cosmos DB for Table).

One entity per key, all in one partition (option ``partition``, default ``o``), so a
``scan(prefix)`` is a RowKey range query and ``put_many`` commits entity transactions
(one partition, at most 100 operations and 4 MiB each). Entity properties:

- ``RowKey``: the key with ``/ \\ # ? ~``, control characters and U+007F to U+009F written
  ``~HH`` (Table storage forbids the first four and the controls); prefixes are kept, so
  ``scan(prefix)`` maps onto ``RowKey ge P and RowKey lt P'``.
- ``v``: the document as JSON text, when it fits one String property (64 KiB, i.e.
  32 Ki UTF-16 units); a larger document is split into Binary properties ``b0``, ``b1``, …
  of at most 64,000 bytes each (``n`` says how many) and reassembled on read. The size
  limit stays DynamoDB's 400 KB, well under the entity's 1 MiB, so what runs on one cloud
  runs on the others.
- ``x``: the expiry (``Edm.DateTime``) for items written with a TTL. Table storage has no
  TTL of its own: expired entities are filtered out of every read and overwritten by
  ``if_absent`` writes.

Versions are the entities' ETags; ``if_version`` and ``if_absent`` are the service's own
``If-Match`` and insert semantics, so they are atomic. The version of an item written with
a TTL carries its expiry after the ETag (``ETAG;x=MICROSECONDS``): an ETag pins the entity,
so a write or delete ``if_version`` of an item whose expiry has passed is refused
(``Conflict``, as for an absent key) without a call, though the entity is still stored.

The blocking face uses ``azure.data.tables``; the async face ``azure.data.tables.aio``, one
client per event loop (see ``_credentials``). Each operation is written once, as a flow
that both faces run (see ``_flow``), so requests, conditions and errors cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from azure.core import MatchConditions
from azure.core import exceptions as az
from azure.data.tables import TableServiceClient, UpdateMode

from ...errors import Conflict, InvalidArgument
from ...resources.keys import prefix_upper_bound
from ...resources.kv import Item, KeyValueStore, KVLimits, Page, order_of
from ...resources.url import ResourceURL
from ._credentials import LoopClient, error, service_client
from ._flow import All, Flow, NextPage, arun, run

__all__ = ["AzureTableKeyValueStore", "decode_row_key", "encode_row_key", "legal_table_name"]

_ESCAPE = frozenset("/\\#?~") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
_HEX = "0123456789ABCDEF"
#: JSON text longer than this (in characters) is stored as Binary chunks
MAX_STRING_CHARS = 32 * 1024 - 16
CHUNK_BYTES = 64_000
MAX_ROW_KEY_BYTES = 1024  # UTF-16, as Table storage counts
MAX_BATCH = 100
MAX_BATCH_BYTES = 3 * 1024 * 1024  # of the 4 MiB a transaction may carry, with room for its framing
MAX_FILTER_KEYS = 14  # a $filter holds at most 15 comparisons; one is the PartitionKey
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EXPIRY_MARK = ";x="
_NEWER_TRIES = 16


def _version(etag: str, expires_at: datetime | None) -> str:
    """The version of an entity with ``etag``: its ETag, with its expiry when it has one."""
    if expires_at is None:
        return etag
    return f"{etag}{_EXPIRY_MARK}{(expires_at - _EPOCH) // _MICROSECOND}"


def encode_row_key(key: str) -> str:
    """The RowKey of ``key`` (see the module docstring); reversible by :func:`decode_row_key`."""
    if not any(char in _ESCAPE for char in key):
        return key
    return "".join(f"~{_HEX[ord(c) >> 4]}{_HEX[ord(c) & 15]}" if c in _ESCAPE else c for c in key)


def decode_row_key(row_key: str) -> str:
    if "~" not in row_key:
        return row_key
    out: list[str] = []
    i, n = 0, len(row_key)
    while i < n:
        if row_key[i] == "~":
            out.append(chr(int(row_key[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(row_key[i])
            i += 1
    return "".join(out)


_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
#: names Table storage keeps for itself
_RESERVED = frozenset({"tables"})


def legal_table_name(name: str) -> str:
    """``name`` as a table name Azure takes (3-63 letters and digits, starting with a letter;
    case does not tell two apart): itself when it is one; else its letters and digits cut to fit,
    then a hash of the whole name (two long names never collide). Deterministic: the runtime and
    a plan derive the same name."""
    if _TABLE.match(name) and name.lower() not in _RESERVED:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    head = "".join(re.findall(r"[A-Za-z0-9]+", name)).lstrip("0123456789")[: 63 - len(digest)]
    return f"{head or 't'}{digest}"


class AzureTableKeyValueStore(KeyValueStore):
    """KV documents in one Azure table. Options: ``partition`` (default ``o``),
    ``account`` / ``endpoint`` / ``connection_env`` (see ``_credentials``).

    Capabilities: ``ttl`` (filtered on read), ``multiprocess``, ``put_if_newer`` (the entity
    is read, its document's order compared, and written ``If-Match`` its ETag, or inserted).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"ttl", "multiprocess", "put_if_newer"})
    limits: ClassVar[KVLimits] = KVLimits(max_key_bytes=512)
    #: how a name Overcast derives (the backlogs' lease store ``APPNAMEovercastbacklogs``) is made one Azure takes
    legal_name = staticmethod(legal_table_name)
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "azure_tables"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        loc = self.location
        table = loc.host
        if not _TABLE.match(table):
            raise InvalidArgument(
                f"{loc}: an Azure table name is 3-63 letters and digits, starting with a letter; got {table!r}"
            )
        self.table_name = table
        self.partition = loc.option("partition") or "o"
        self._service: TableServiceClient = service_client(loc, "table", TableServiceClient)
        self._table = self._service.get_table_client(table)
        self._aio = LoopClient(loc, "table", lambda service: service.get_table_client(table))

    # -- keys and entities -----------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        super()._check_key(key)
        row = encode_row_key(key)
        size = len(row.encode("utf-16-le"))
        if size > MAX_ROW_KEY_BYTES:
            raise InvalidArgument(
                f"{self.name}: key {key[:40]!r}... is {size} bytes as a RowKey (UTF-16, with / \\ # ? ~ and "
                f"control characters escaped); Table storage's limit is {MAX_ROW_KEY_BYTES} bytes",
                resource=self.name,
            )

    def _entity(self, key: str, data: bytes, expires_at: datetime | None) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": self.partition, "RowKey": encode_row_key(key)}
        text = data.decode()
        if len(text) <= MAX_STRING_CHARS:
            entity["v"] = text
        else:
            count = math.ceil(len(data) / CHUNK_BYTES)
            entity["n"] = count
            for i in range(count):
                entity[f"b{i}"] = data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]
        if expires_at is not None:
            entity["x"] = expires_at
        return entity

    @staticmethod
    def _expired(entity: Any, now: datetime) -> bool:
        expiry = entity.get("x")
        return expiry is not None and expiry <= now

    def _item(self, entity: Any) -> Item:
        text = entity.get("v")
        if text is None:
            count = int(entity.get("n") or 0)
            value = json.loads(b"".join(bytes(entity[f"b{i}"]) for i in range(count)))
        else:
            value = json.loads(text)
        expiry = entity.get("x")
        if expiry is not None and expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        return Item(decode_row_key(entity["RowKey"]), value, _version(entity.metadata["etag"], expiry), expiry)

    def _fail(self, exc: Exception, what: str) -> Exception:
        return error(exc, self.name, what)

    # -- requests and answers ---------------------------------------------------------------

    def _if_match(self, key: str, if_version: str) -> str:
        """The ETag to send as ``If-Match`` for ``if_version``; Conflict if that version has expired."""
        etag, mark, expiry = if_version.partition(_EXPIRY_MARK)
        if mark:
            try:
                expires_at = _EPOCH + int(expiry) * _MICROSECOND
            except (ValueError, OverflowError):
                expires_at = _EPOCH  # not a version this store wrote: it cannot match
            if expires_at <= datetime.now(UTC):
                raise Conflict(
                    f"{self.name}: key {key!r} is absent (expired), not at version {if_version}", resource=self.name
                )
        return etag

    def _put_error(self, exc: Exception, key: str, if_version: str | None) -> Exception:
        if isinstance(exc, (az.ResourceModifiedError, az.ResourceNotFoundError)) or (
            isinstance(exc, az.HttpResponseError) and exc.status_code in (404, 412)
        ):
            return Conflict(f"{self.name}: key {key!r} is not at version {if_version}", resource=self.name)
        return self._fail(exc, f"put of key {key!r}")

    def _taken(self, key: str) -> Conflict:
        return Conflict(f"{self.name}: key {key!r} exists (if_absent)", resource=self.name)

    def _delete_args(self, key: str, if_version: str | None) -> dict[str, Any]:
        from azure.data.tables._serialize import _get_match_condition, _prepare_key

        etag = None if if_version is None else self._if_match(key, if_version)
        return {
            "table": self.table_name,
            "partition_key": _prepare_key(self.partition),
            "row_key": _prepare_key(encode_row_key(key)),
            "etag": etag,
            "match_condition": _get_match_condition(  # type: ignore[no-untyped-call]
                etag=etag,
                match_condition=MatchConditions.IfNotModified if if_version else MatchConditions.Unconditionally,
            ),
        }

    def _delete_error(self, exc: Exception, key: str, if_version: str | None) -> Exception | None:
        """The error to raise for ``exc``, or None for a key that was absent (delete returns False)."""
        if isinstance(exc, az.HttpResponseError) and exc.status_code == 404:
            if if_version is None:
                return None
            return Conflict(f"{self.name}: key {key!r} is absent, not at version {if_version}", resource=self.name)
        if isinstance(exc, az.HttpResponseError) and exc.status_code == 412:
            return Conflict(f"{self.name}: key {key!r} is not at version {if_version}", resource=self.name)
        return self._fail(exc, f"delete of key {key!r}")

    def _scan_query(self, prefix: str, cursor: str | None) -> tuple[str, dict[str, Any]]:
        low = encode_row_key(prefix)
        high = prefix_upper_bound(low) if low else None
        clauses = ["PartitionKey eq @pk"]
        params: dict[str, Any] = {"pk": self.partition}
        if cursor is not None:
            clauses.append("RowKey gt @after")
            params["after"] = cursor
        elif low:
            clauses.append("RowKey ge @low")
            params["low"] = low
        if high is not None:
            clauses.append("RowKey lt @high")
            params["high"] = high
        return " and ".join(clauses), params

    def _many_queries(self, keys: list[str]) -> list[tuple[str, dict[str, Any]]]:
        queries = []
        for start in range(0, len(keys), MAX_FILTER_KEYS):
            group = keys[start : start + MAX_FILTER_KEYS]
            params: dict[str, Any] = {"pk": self.partition}
            ors = []
            for i, key in enumerate(group):
                params[f"k{i}"] = encode_row_key(key)
                ors.append(f"RowKey eq @k{i}")
            queries.append((f"PartitionKey eq @pk and ( {' or '.join(ors)} )", params))
        return queries

    def _batches(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> list[list[tuple[str, dict[str, Any]]]]:
        """``entries`` as entity transactions within Table storage's count and size limits."""
        batches: list[list[tuple[str, dict[str, Any]]]] = []
        batch: list[tuple[str, dict[str, Any]]] = []
        size = 0
        for key, _value, data in entries:
            weight = len(data) * 4 // 3 + 512
            if batch and (len(batch) >= MAX_BATCH or size + weight > MAX_BATCH_BYTES):
                batches.append(batch)
                batch, size = [], 0
            batch.append((key, self._entity(key, data, expires_at)))
            size += weight
        if batch:
            batches.append(batch)
        return batches

    # -- life cycle ------------------------------------------------------------------------

    def _create_blocking(self) -> None:
        try:
            self._service.create_table_if_not_exists(self.table_name)
        except az.AzureError as exc:
            raise self._fail(exc, "create table") from exc

    def _ping_blocking(self) -> None:
        try:
            next(iter(self._table.query_entities("PartitionKey eq 'ping'", results_per_page=1)), None)
        except az.AzureError as exc:
            raise self._fail(exc, "ping") from exc

    # -- the operations: each one flow, run by both faces (see ``_flow``) ---------------------

    def _get_flow(self, table: Any, key: str) -> Flow[Item | None]:
        try:
            entity = yield table.get_entity(self.partition, encode_row_key(key))
        except az.ResourceNotFoundError:
            return None
        except az.AzureError as exc:
            raise self._fail(exc, f"get of key {key!r}") from exc
        return None if self._expired(entity, datetime.now(UTC)) else self._item(entity)

    def _put_flow(
        self, table: Any, key: str, data: bytes, if_version: str | None, if_absent: bool, expires_at: datetime | None
    ) -> Flow[str]:
        entity = self._entity(key, data, expires_at)
        if if_absent:
            return _version((yield from self._insert_flow(table, key, entity)), expires_at)
        try:
            if if_version is not None:
                result = yield table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=self._if_match(key, if_version),
                    match_condition=MatchConditions.IfNotModified,
                )
            else:
                result = yield table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except az.AzureError as exc:
            raise self._put_error(exc, key, if_version) from exc
        return _version(str(result["etag"]), expires_at)

    def _insert_flow(self, table: Any, key: str, entity: dict[str, Any]) -> Flow[str]:
        try:
            return str((yield table.create_entity(entity))["etag"])
        except az.ResourceExistsError as exc:
            taken = exc
        except az.AzureError as exc:
            raise self._fail(exc, f"put of key {key!r}") from exc
        try:  # an expired entity counts as absent: replace it if it has not moved since
            current = yield table.get_entity(self.partition, entity["RowKey"])
        except az.ResourceNotFoundError:
            current = None
        except az.AzureError as exc:
            raise self._fail(exc, f"put of key {key!r}") from exc
        if current is not None and not self._expired(current, datetime.now(UTC)):
            raise self._taken(key) from taken
        try:
            if current is None:
                return str((yield table.create_entity(entity))["etag"])
            result = yield table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (az.ResourceExistsError, az.ResourceModifiedError, az.ResourceNotFoundError) as exc:
            raise self._taken(key) from exc
        except az.AzureError as exc:
            raise self._fail(exc, f"put of key {key!r}") from exc
        return str(result["etag"])

    def _newer_flow(
        self, table: Any, key: str, data: bytes, order: str, expires_at: datetime | None
    ) -> Flow[str | None]:
        """Read, compare orders, write If-Match the ETag read (or insert): a racing writer fails it."""
        entity = self._entity(key, data, expires_at)
        for _ in range(_NEWER_TRIES):
            try:
                current = yield table.get_entity(self.partition, entity["RowKey"])
            except az.ResourceNotFoundError:
                current = None
            except az.AzureError as exc:
                raise self._fail(exc, f"put of key {key!r}") from exc
            live = current is not None and not self._expired(current, datetime.now(UTC))
            if live and order_of(self._item(current).value) >= order:
                return None
            try:
                if current is None:
                    result = yield table.create_entity(entity)
                else:
                    result = yield table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (az.ResourceExistsError, az.ResourceModifiedError, az.ResourceNotFoundError):
                continue  # written or deleted meanwhile: compare again
            except az.AzureError as exc:
                if isinstance(exc, az.HttpResponseError) and exc.status_code in (404, 409, 412):
                    continue
                raise self._fail(exc, f"put of key {key!r}") from exc
            return _version(str(result["etag"]), expires_at)
        raise Conflict(f"{self.name}: key {key!r} kept moving; put_if_newer gave up", resource=self.name)

    def _delete_flow(self, table: Any, key: str, if_version: str | None) -> Flow[bool]:
        args = self._delete_args(key, if_version)
        try:
            # The public delete_entity hides a 404; the generated operation says whether it existed.
            yield table._client.table.delete_entity(**args)
        except az.AzureError as exc:
            failure = self._delete_error(exc, key, if_version)
            if failure is None:
                return False
            raise failure from exc
        return True

    def _scan_flow(self, table: Any, prefix: str, limit: int, cursor: str | None) -> Flow[Page]:
        query, params = self._scan_query(prefix, cursor)
        items: list[Item] = []
        last: str | None = None
        now = datetime.now(UTC)
        try:
            pages = table.query_entities(query, parameters=params, results_per_page=limit).by_page()
            while (page := (yield NextPage(pages))) is not None:
                for entity in page:
                    last = entity["RowKey"]
                    if not self._expired(entity, now):
                        items.append(self._item(entity))
                        if len(items) >= limit:
                            return Page(items, last)
        except az.AzureError as exc:
            raise self._fail(exc, "scan") from exc
        return Page(items, None)

    def _get_many_flow(self, table: Any, keys: list[str]) -> Flow[dict[str, Item]]:
        found: dict[str, Item] = {}
        now = datetime.now(UTC)
        for query, params in self._many_queries(keys):
            try:
                entities = yield All(table.query_entities(query, parameters=params))
            except az.AzureError as exc:
                raise self._fail(exc, "get_many") from exc
            for entity in entities:
                if not self._expired(entity, now):
                    item = self._item(entity)
                    found[item.key] = item
        return found

    def _put_many_flow(
        self, table: Any, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> Flow[dict[str, str]]:
        versions: dict[str, str] = {}
        for batch in self._batches(entries, expires_at):
            versions.update((yield from self._commit_flow(table, batch)))
        return versions

    def _commit_flow(self, table: Any, batch: list[tuple[str, dict[str, Any]]]) -> Flow[dict[str, str]]:
        """One entity transaction: all of ``batch`` is written, or none of it."""
        try:
            results = yield table.submit_transaction(
                [("upsert", entity, {"mode": UpdateMode.REPLACE}) for _, entity in batch]
            )
        except az.AzureError as exc:
            raise self._fail(exc, f"put_many of {len(batch)} keys") from exc
        return {
            key: _version(str(result["etag"]), entity.get("x"))
            for (key, entity), result in zip(batch, results, strict=True)
        }

    def _commit(self, batch: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
        return run(self._commit_flow(self._table, batch))

    # -- the faces: azure.data.tables, and azure.data.tables.aio on the running loop --------

    def _get_blocking(self, key: str) -> Item | None:
        return run(self._get_flow(self._table, key))

    async def _get(self, key: str) -> Item | None:
        return await arun(self._get_flow(await self._aio(), key))

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        return run(self._put_flow(self._table, key, data, if_version, if_absent, expires_at))

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        return await arun(self._put_flow(await self._aio(), key, data, if_version, if_absent, expires_at))

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        return run(self._newer_flow(self._table, key, data, order, expires_at))

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        return await arun(self._newer_flow(await self._aio(), key, data, order, expires_at))

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        return run(self._delete_flow(self._table, key, if_version))

    async def _delete(self, key: str, if_version: str | None) -> bool:
        return await arun(self._delete_flow(await self._aio(), key, if_version))

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        return run(self._scan_flow(self._table, prefix, limit, cursor))

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        return await arun(self._scan_flow(await self._aio(), prefix, limit, cursor))

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        return run(self._get_many_flow(self._table, keys))

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        return await arun(self._get_many_flow(await self._aio(), keys))

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        return run(self._put_many_flow(self._table, entries, expires_at))

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        return await arun(self._put_many_flow(await self._aio(), entries, expires_at))

    def close(self) -> None:
        return None
