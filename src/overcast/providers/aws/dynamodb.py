"""Key-value documents in a DynamoDB table: ``dynamodb://TABLE?region=eu-west-1``.

Key design. The table has a string partition key ``pk`` and a string sort key ``sk``.
Every item of a store sits in one partition, ``pk = <partition>`` (the URL option
``partition``, default ``kv``), with the Overcast key as ``sk``. DynamoDB orders a
partition's sort keys by their UTF-8 bytes, which is code-point order, so
``scan(prefix)`` is one ``Query`` with ``begins_with(sk, :prefix)`` paging through
``ExclusiveStartKey`` — never a table ``Scan`` — and yields keys in order. Several stores
may share a table with different ``partition`` options.

Limits of that design: one partition key serves the whole store, so its throughput is
what DynamoDB gives a single partition key (about 3,000 reads and 1,000 writes a second
before adaptive capacity splits it by sort-key range); a store that needs more should be
split across several partitions (several stores). Sort keys are at most 1,024 bytes (the
Overcast key limit), and an item is at most 400 KB including attribute names, so the
document limit is 400 KB less room for the key and the bookkeeping attributes; both are
checked before any call.

Attributes: ``doc`` (the document as JSON text, so it round-trips exactly), ``ver`` (the
version), ``exp`` (expiry, epoch seconds with fractions) and ``ttl`` (the same rounded up
to whole seconds: the table's TTL attribute, which ``create()`` turns on). DynamoDB deletes
expired items lazily, up to days later, so every read filters them out. ``ord`` is the
document's order, written by ``put_if_newer`` beside the text DynamoDB cannot look into,
so its condition (``ord < :order``) is one ``PutItem``; an item written by ``put`` has no
``ord``, and is then replaced only if its document's order is lower and its version has not
moved (a second ``PutItem``). ``put_with_log`` makes that ``PutItem`` and a second key's
plain put one ``TransactWriteItems`` (a replicated store's write and its change-log entry,
in the same partition): one request, atomic, billed as two transactional writes (twice
the write units of two ``PutItem``).

Conditional writes are condition expressions; an expired item counts as absent.
``get_many``/``put_many`` use ``BatchGetItem``/``BatchWriteItem`` in chunks of 100 and
25 items, retrying unprocessed keys with jittered exponential backoff. Every read is
strongly consistent. Throttling is retried in botocore's standard mode and then raised as
:class:`~overcast.errors.Throttled`.

Client. Where credentials are in the environment and the region is known (as on Lambda),
the store speaks DynamoDB's JSON protocol itself (:mod:`._lite`: SigV4 over
``http.client``, the same retries and error codes) and never imports botocore, which saves
about 125 ms of cold start; elsewhere it uses botocore. ``client=botocore`` (or
``OVERCAST_DYNAMODB_CLIENT=botocore``) always uses botocore.

URL options: ``region``, ``endpoint``, ``partition``, ``retries``, ``client``, ``account`` (a
table of another account, declared by ARN: every request names the table by its ARN),
``transactions`` (``false``: no ``put_with_log``, so a replicated store writes the document and
its log entry as two ``PutItem`` at once, at half the write units, no longer atomically).

IAM: ``dynamodb:GetItem``, ``PutItem`` (which also authorizes the puts of a
``TransactWriteItems``), ``DeleteItem``, ``Query``, ``BatchGetItem``, ``BatchWriteItem`` on
the table; ``CreateTable``, ``DescribeTable``, ``UpdateTimeToLive`` for ``create()``.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from ...errors import ConfigError, Conflict, InvalidArgument, ProviderError, Throttled
from ...resources.kv import Item, KeyValueStore, KVLimits, LogEntry, Page, order_of
from ...resources.url import ResourceURL
from ...resources.versions import new_version
from ._client import aws_error, client, error_code, jittered_backoff, region_of
from ._lite import dynamodb_client
from .arns import table_arn

__all__ = ["DynamoDBKeyValueStore"]

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ITEM_LIMIT = 400_000  # "400 KB"; the service takes a little more (about 409,000 bytes)
_MAX_PARTITION = 64
#: attribute names and the largest values of everything but the document:
#: pk + partition, sk + 1,024-byte key, doc, ver + version, exp + ttl numbers, ord + an order.
_OVERHEAD = 2 + _MAX_PARTITION + 2 + 1024 + 3 + 3 + 40 + 3 + 21 + 3 + 21 + 3 + 56
_NEWER_TRIES = 8
_BATCH_GET = 100
_BATCH_WRITE = 25
_BATCH_ATTEMPTS = 8


class DynamoDBKeyValueStore(KeyValueStore):
    """JSON documents in one partition of a DynamoDB table; see the module docstring for the design.

    Capabilities: ``ttl``, ``ordered_scan``, ``multiprocess``, ``put_if_newer`` (a condition
    expression on the ``ord`` attribute), ``put_with_log`` (that ``Put`` and the log entry's
    in one ``TransactWriteItems``: one request, both or neither, at twice the write units).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"ttl", "ordered_scan", "multiprocess", "put_if_newer", "put_with_log"}
    )
    limits: ClassVar[KVLimits] = KVLimits(max_key_bytes=1024, max_value_bytes=_ITEM_LIMIT - _OVERHEAD)
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        table = self.location.host
        if not _TABLE_NAME.match(table):
            raise ConfigError(
                f"{self.name}: DynamoDB table name {table!r} in {self.location} must be 3-255 "
                "letters, digits, '_', '-' or '.'"
            )
        partition = self.location.option("partition", "kv") or "kv"
        if len(partition.encode()) > _MAX_PARTITION:
            raise ConfigError(f"{self.name}: partition {partition!r} is longer than {_MAX_PARTITION} bytes")
        #: what every request names: the table's ARN when it is of the account ``account``
        #: (declared by ARN), which is how DynamoDB reaches another account's table
        owner = self.location.option("account")
        self.table = table_arn(region_of(self.location), owner, table) if owner else table
        self.table_name = table
        self.partition = partition
        if not self.location.option_bool("transactions", True, resource=self.name):
            self.capabilities = type(self).capabilities - {"put_with_log"}  # type: ignore[misc]
        self._pk = {"S": partition}
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The DynamoDB client, shared by every store in this region: the botocore-free one of
        :mod:`._lite` where it behaves as botocore would (credentials in the environment, ...),
        else botocore's; the URL option ``client`` chooses (``auto``, ``lite``, ``botocore``)."""
        if self._client is None:
            self._client = dynamodb_client(self.location) or client("dynamodb", self.location)
        return self._client

    def _error(self, exc: Exception, key: str | None = None) -> ProviderError:
        about = f"{self.name}: DynamoDB table {self.table}" + (f", key {key!r}" if key is not None else "")
        error = aws_error(exc, about, resource=self.name)
        if error_code(exc) == "ResourceNotFoundException":
            error.args = (f"{about}: the table does not exist (create it, e.g. `await kv.create()`)",)
        return error

    # -- life cycle ----------------------------------------------------------------------

    def _create_blocking(self) -> None:
        c = self.client
        try:
            c.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":
                raise self._error(exc) from exc
        try:
            deadline = time.monotonic() + 300
            while c.describe_table(TableName=self.table)["Table"]["TableStatus"] != "ACTIVE":
                if time.monotonic() > deadline:
                    raise ProviderError(f"{self.name}: table {self.table} did not become ACTIVE", resource=self.name)
                time.sleep(1)
            ttl = c.describe_time_to_live(TableName=self.table)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                c.update_time_to_live(
                    TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
                )
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    def _ping_blocking(self) -> None:
        try:
            self.client.describe_table(TableName=self.table)
        except Exception as exc:
            raise self._error(exc) from exc

    # -- items ---------------------------------------------------------------------------

    def _item(self, key: str, data: bytes, version: str, expires_at: datetime | None) -> dict[str, Any]:
        item = {"pk": self._pk, "sk": {"S": key}, "doc": {"S": data.decode()}, "ver": {"S": version}}
        if expires_at is not None:
            stamp = expires_at.timestamp()
            item["exp"] = {"N": repr(stamp)}
            item["ttl"] = {"N": str(math.ceil(stamp))}
        return item

    def _decode(self, raw: dict[str, Any], now: float) -> Item | None:
        exp = raw.get("exp")
        expires = None
        if exp is not None:
            stamp = float(exp["N"])
            if stamp <= now:
                return None
            expires = datetime.fromtimestamp(stamp, UTC)
        return Item(raw["sk"]["S"], json.loads(raw["doc"]["S"]), raw["ver"]["S"], expires)

    def _get_blocking(self, key: str) -> Item | None:
        try:
            raw = self.client.get_item(
                TableName=self.table, Key={"pk": self._pk, "sk": {"S": key}}, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise self._error(exc, key) from exc
        return None if raw is None else self._decode(raw, time.time())

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        version = new_version()
        request: dict[str, Any] = {"TableName": self.table, "Item": self._item(key, data, version, expires_at)}
        if if_version is not None:
            request["ConditionExpression"] = "ver = :v AND (attribute_not_exists(exp) OR exp > :now)"
            request["ExpressionAttributeValues"] = {":v": {"S": if_version}, ":now": {"N": repr(time.time())}}
        elif if_absent:
            request["ConditionExpression"] = "attribute_not_exists(sk) OR exp <= :now"
            request["ExpressionAttributeValues"] = {":now": {"N": repr(time.time())}}
        if "ConditionExpression" in request:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self.client.put_item(**request)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise self._conflict(exc, key, if_version) from exc
            raise self._error(exc, key) from exc
        return version

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        version = new_version()
        item = self._item(key, data, version, expires_at)
        item["ord"] = {"S": order}
        write = lambda condition, values: self._put_unless(key, item, condition, values)  # noqa: E731
        return version if self._write_if_newer(key, order, write, "put_if_newer") else None

    def _write_if_newer(self, key: str, order: str, write: Any, what: str) -> bool:
        """``write(condition, values)`` (one attempt: (written, the item that failed it or None))
        until it lands only if newer: True when written, False when what is stored is as new."""
        newer = "attribute_not_exists(sk) OR exp <= :now OR ord < :o"
        condition, values = newer, {":o": {"S": order}}
        for _ in range(_NEWER_TRIES):
            if condition is newer:
                values = {":o": {"S": order}, ":now": {"N": repr(time.time())}}
            written, old = write(condition, values)
            if written:
                return True
            if old is None:  # deleted meanwhile, or another transaction held the item: again
                condition = newer
                continue
            current = self._decode(old, time.time())
            stored = old["ord"]["S"] if "ord" in old else ("" if current is None else order_of(current.value))
            if current is not None and stored >= order:
                return False
            # lower, but written by put (no ord) or expired by now: replace it if it has not moved
            condition, values = "ver = :v", {":v": old["ver"]}
        raise Conflict(f"{self.name}: key {key!r} kept moving; {what} gave up", resource=self.name)

    def _put_unless(
        self, key: str, item: dict[str, Any], condition: str, values: dict[str, Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        """PutItem under ``condition``: (True, None) when written, else (False, the item that failed it)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False, getattr(exc, "response", {}).get("Item")
            raise self._error(exc, key) from exc
        return True, None

    def _put_with_log_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        order: str,
        expires_at: datetime | None,
        log: LogEntry,
    ) -> tuple[str, str] | None:
        """``_put_if_newer_blocking``'s conditions, with the log entry's put in the same transaction."""
        version, entry = new_version(), new_version()
        item = self._item(key, data, version, expires_at)
        item["ord"] = {"S": order}
        log_item = self._item(log.key, log.data, entry, None)
        write = lambda condition, values: self._transact_unless(key, item, condition, values, log_item)  # noqa: E731
        return (version, entry) if self._write_if_newer(key, order, write, "put_with_log") else None

    def _transact_unless(
        self, key: str, item: dict[str, Any], condition: str, values: dict[str, Any], log_item: dict[str, Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        """``item`` under ``condition`` and ``log_item`` in one TransactWriteItems: (True, None) when
        written, else (False, the item that failed the condition, None if none or it was busy)."""
        put = {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            self.client.transact_write_items(
                TransactItems=[{"Put": put}, {"Put": {"TableName": self.table, "Item": log_item}}]
            )
        except Exception as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise self._error(exc, key) from exc
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or [{}]
            if reasons[0].get("Code") != "ConditionalCheckFailed":
                if any(r.get("Code") == "TransactionConflict" for r in reasons):
                    return False, None  # another transaction on the item: try again
                raise self._error(exc, key) from exc
            return False, reasons[0].get("Item") or self._raw(key)
        return True, None

    def _raw(self, key: str) -> dict[str, Any] | None:
        """The stored item as DynamoDB returns it (where a cancellation did not carry it)."""
        try:
            raw: dict[str, Any] | None = self.client.get_item(
                TableName=self.table, Key={"pk": self._pk, "sk": {"S": key}}, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise self._error(exc, key) from exc
        return raw

    def _conflict(self, exc: Exception, key: str, if_version: str | None) -> Conflict:
        if if_version is None:
            return Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
        old = getattr(exc, "response", {}).get("Item")
        current = None if old is None else self._decode(old, time.time())
        found = "is absent" if current is None else f"is at version {current.version}"
        return Conflict(f"{self.name}: key {key!r} {found}, not at version {if_version}", resource=self.name)

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": self._pk, "sk": {"S": key}},
            "ReturnValues": "ALL_OLD",
        }
        if if_version is not None:
            request["ConditionExpression"] = "ver = :v AND (attribute_not_exists(exp) OR exp > :now)"
            request["ExpressionAttributeValues"] = {":v": {"S": if_version}, ":now": {"N": repr(time.time())}}
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            old = self.client.delete_item(**request).get("Attributes")
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise self._conflict(exc, key, if_version) from exc
            raise self._error(exc, key) from exc
        return bool(old) and self._decode(old, time.time()) is not None

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
        request: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "ExpressionAttributeValues": {":pk": self._pk},
        }
        if prefix:
            request["KeyConditionExpression"] = "pk = :pk AND begins_with(sk, :prefix)"
            request["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        else:
            request["KeyConditionExpression"] = "pk = :pk"
        if cursor is not None:
            request["ExclusiveStartKey"] = {"pk": self._pk, "sk": {"S": cursor}}
        items: list[Item] = []
        now = time.time()
        while True:
            # One more than asked, to know whether another page follows; expired items are
            # dropped here, so the query may run again to fill the page.
            request["Limit"] = limit + 1 - len(items)
            try:
                response = self.client.query(**request)
            except Exception as exc:
                raise self._error(exc) from exc
            for raw in response.get("Items", ()):
                item = self._decode(raw, now)
                if item is not None:
                    items.append(item)
            last = response.get("LastEvaluatedKey")
            if len(items) > limit or last is None:
                break
            request["ExclusiveStartKey"] = last
        more = len(items) > limit
        items = items[:limit]
        return Page(items, items[-1].key if more else None)

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for start in range(0, len(keys), _BATCH_GET):
            chunk = keys[start : start + _BATCH_GET]
            pending: list[dict[str, Any]] = [
                {self.table: {"Keys": [{"pk": self._pk, "sk": {"S": k}} for k in chunk], "ConsistentRead": True}}
            ]
            got: list[dict[str, Any]] = []

            def attempt(pending: list[dict[str, Any]] = pending, got: list[dict[str, Any]] = got) -> bool | None:
                try:
                    response = self.client.batch_get_item(RequestItems=pending[0])
                except Exception as exc:
                    raise self._error(exc) from exc
                got.extend(response.get("Responses", {}).get(self.table, ()))
                unprocessed = response.get("UnprocessedKeys") or {}
                if not unprocessed.get(self.table, {}).get("Keys"):
                    return True
                pending[0] = unprocessed
                return None

            if jittered_backoff(attempt, attempts=_BATCH_ATTEMPTS) is None:
                raise Throttled(
                    f"{self.name}: BatchGetItem on {self.table} left keys unprocessed after {_BATCH_ATTEMPTS} attempts",
                    resource=self.name,
                )
            now = time.time()
            for raw in got:
                item = self._decode(raw, now)
                if item is not None:
                    found[item.key] = item
        return found

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        versions: dict[str, str] = {}
        requests = []
        for key, _, data in entries:
            version = versions[key] = new_version()
            requests.append({"PutRequest": {"Item": self._item(key, data, version, expires_at)}})
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: list[dict[str, Any]] = [{self.table: requests[start : start + _BATCH_WRITE]}]

            def attempt(pending: list[dict[str, Any]] = pending) -> bool | None:
                try:
                    response = self.client.batch_write_item(RequestItems=pending[0])
                except Exception as exc:
                    raise self._error(exc) from exc
                unprocessed = response.get("UnprocessedItems") or {}
                if not unprocessed.get(self.table):
                    return True
                pending[0] = unprocessed
                return None

            if jittered_backoff(attempt, attempts=_BATCH_ATTEMPTS) is None:
                raise Throttled(
                    f"{self.name}: BatchWriteItem on {self.table} left items unprocessed after "
                    f"{_BATCH_ATTEMPTS} attempts",
                    resource=self.name,
                )
        return versions
