"""Key-value documents in a Firestore collection: ``firestore://COLLECTION?project=P&database=D``.

Key design. Each item is one document of the collection. Its id is ``k`` followed by
:func:`~overcast.resources.keys.encode_key` of the Overcast key: Firestore ids cannot
contain ``/`` nor be ``.``, ``..`` or ``__x__``; the encoding maps every key onto
``[A-Za-z0-9._-~]`` and the ``k`` rules out the reserved ids, both keeping prefixes.
``scan(prefix)`` is therefore one query on the
document id (``__name__ >= encoded prefix AND __name__ < its upper bound``, ordered by
id, paging with ``__name__ > last``), never a listing of the whole collection. The
encoding does not keep code-point order between escaped and plain characters, so scans
are in encoded order (no ``ordered_scan``).

Fields: ``d``, the document as JSON text (Firestore maps cannot hold nested arrays and
reorder keys; text round-trips exactly), ``v``, the version, and ``x``, the expiry as a
timestamp. Give the
collection a TTL policy on ``x`` (``google_firestore_field`` with ``ttl_config``) and
Firestore deletes expired documents, within about a day; every read filters them out
meanwhile.

Versions are a field written with every write (a per-process random prefix and a
counter): Firestore's own update time does not move when a write changes nothing, and a
version must. Conditions are enforced on the update time, which does move whenever the
version field does. ``if_absent`` is ``create`` (an expired document is replaced
under an update-time precondition); ``if_version`` and ``delete`` read the document,
check version and expiry, then write under ``last_update_time`` preconditions, so a racing
writer makes the loser fail with :class:`~overcast.errors.Conflict`. ``get_many`` is one
``BatchGetDocuments`` per 300 keys; ``put_many`` commits batches of 500 writes (Firestore's
limit). Reads are strongly consistent.

Clients. The blocking face (``store.sync``, WSGI views) uses the thread-safe
``google.cloud.firestore.Client``, one per project and database. Async callers use
``google.cloud.firestore.AsyncClient`` on the running event loop, with no worker-thread hop:
its gRPC channel belongs to the loop it was made on, so each loop gets its own, made on
first use (``asyncio.run`` twice is two loops, two clients). Both faces run the same code
for every operation of more than one call (:func:`_run` / :func:`_arun` drive one generator
per operation), so preconditions, expiry and errors cannot drift apart; ``get`` is one unary
``GetDocument`` call on either client, decoded by the same code. Every KV operation is sound on
``AsyncClient``: each is single-document calls with update-time preconditions, a batch get
or a batch write, and none needs a transaction. Only ``create()`` and ``ping()`` (rare) still
run the blocking client in a worker thread.

Limits: a document id is at most 1,500 bytes and an escaped byte takes three, so keys are
at most 498 bytes (even, as multibyte keys need); a document is at most
1 MiB including its name, so values are at most
1 MiB less 4 KiB.

URL options: ``project`` (else ``GOOGLE_CLOUD_PROJECT``), ``database`` (``(default)``).

IAM: ``roles/datastore.user`` on the project (Firestore has no per-collection roles).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Generator, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from ...errors import ConfigError, Conflict, InvalidArgument, ProviderError
from ...resources.keys import decode_key, encode_key
from ...resources.kv import Item, KeyValueStore, KVLimits, Page, order_of
from ...resources.url import ResourceURL
from ...resources.versions import new_version
from ._client import google_error, project_of
from ._retries import count_gapic_retries, deadline

__all__ = ["FirestoreKeyValueStore"]

T = TypeVar("T")

_COLLECTION = re.compile(r"^(?!__.*__$)(?!\.\.?$)[^/]{1,1500}$")
_BATCH_GET = 300
_BATCH_WRITE = 500
_DOC_LIMIT = 1024 * 1024
_NEWER_TRIES = 16

_lock = threading.Lock()

_clients: dict[tuple[str | None, str, float], Any] = {}
# event loop -> (project, database) -> AsyncClient; entries of closed loops are dropped
# whenever another loop makes its first client (a client keeps its loop alive, so a weak
# mapping would never let go of either)
_async_clients: dict[Any, dict[tuple[str | None, str, float], Any]] = {}


def _client(project: str | None, database: str, seconds: float) -> Any:
    """The client of a project and database whose calls end within ``seconds``, retries included."""
    with _lock:
        found = _clients.get((project, database, seconds))
        if found is None:
            from google.cloud import firestore

            found = _clients[(project, database, seconds)] = firestore.Client(project=project, database=database)
            count_gapic_retries(found._firestore_api, "firestore", seconds)
        return found


def _async_client(loop: Any, project: str | None, database: str, seconds: float) -> Any:
    """The ``google.cloud.firestore.AsyncClient`` of ``loop``: its gRPC channel belongs to the
    loop it was made on (on another loop its calls fail with "Event loop is closed" or hang)."""
    with _lock:
        per_loop = _async_clients.get(loop)
        if per_loop is None:
            for closed in [other for other in _async_clients if other.is_closed()]:
                del _async_clients[closed]
            per_loop = _async_clients[loop] = {}
        found = per_loop.get((project, database, seconds))
        if found is None:
            from google.cloud import firestore

            client = firestore.AsyncClient(project=project, database=database)
            found = per_loop[(project, database, seconds)] = client
            count_gapic_retries(found._firestore_api, "firestore", seconds)
        return found


def _doc_id(key: str) -> str:
    return "k" + encode_key(key)


# -- one flow, two clients ------------------------------------------------------------------
#
# Each operation that takes more than one call is written once, as a generator that yields
# every Firestore call it makes and receives the call's result. Given the sync client's
# references, a call has already run when it is yielded; given the AsyncClient's, it is an
# awaitable that the async runner awaits on the loop. Streams are yielded wrapped in _All.
# A failed call is raised inside the flow at its yield, so both faces share every
# precondition, expiry and error-mapping decision.

Flow = Generator[Any, Any, T]


class _All:
    """A query or batch-get stream, to be read to the end by the runner."""

    __slots__ = ("source",)

    def __init__(self, source: Any) -> None:
        self.source = source


def _run(flow: Flow[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = op, None
        if type(op) is _All:
            try:
                value = list(op.source)
            except Exception as exc:
                value, error = None, exc


async def _arun(flow: Flow[T]) -> T:
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            value = [item async for item in op.source] if type(op) is _All else await op
        except Exception as exc:
            value, error = None, exc


def _read(client: Any, ref: Any) -> Flow[Any]:
    """One document's snapshot, through ``get_all`` read to the end of its stream (see ``_get``)."""
    snapshots = yield _All(client.get_all([ref]))
    return snapshots[0]


class FirestoreKeyValueStore(KeyValueStore):
    """JSON documents in one Firestore collection; see the module docstring for the design.

    Capabilities: ``ttl``, ``multiprocess``, ``put_if_newer`` (the document is read, its
    order compared, and written under an ``exists=False`` or update-time precondition).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"ttl", "multiprocess", "put_if_newer"})
    limits: ClassVar[KVLimits] = KVLimits(max_key_bytes=498, max_value_bytes=_DOC_LIMIT - 4096)
    offload: ClassVar[bool] = True  # create and ping only: every KV operation has an async hook

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        collection = self.location.host
        if not _COLLECTION.match(collection):
            raise ConfigError(
                f"{self.name}: Firestore collection id {collection!r} in {self.location} must be 1-1500 "
                "bytes without '/', and not '.', '..' or '__...__'"
            )
        if self.location.path:
            raise ConfigError(
                f"{self.name}: {self.location} names a path after the collection; give a top-level collection id"
            )
        self.collection_id = collection
        self.project = project_of(self.location)
        self.database = self.location.option("database", "(default)") or "(default)"
        self.timeout = deadline(self.location)
        self._collection: Any = None
        # (loop, AsyncClient, its collection) of the loop this store last ran on: one tuple,
        # replaced whole, so threads running their own loops never see a torn pair
        self._on_loop: tuple[Any, Any, Any] = (None, None, None)

    @property
    def client(self) -> Any:
        """The ``google.cloud.firestore.Client`` (shared by every store of a project and database)."""
        return _client(self.project, self.database, self.timeout)

    @property
    def collection(self) -> Any:
        if self._collection is None:
            self._collection = self.client.collection(self.collection_id)
        return self._collection

    def async_client(self) -> Any:
        """The ``google.cloud.firestore.AsyncClient`` of the running event loop (one per loop,
        shared by every store of a project and database on it)."""
        return self._async_face()[0]

    def _async_face(self) -> tuple[Any, Any]:
        from asyncio import get_running_loop

        loop = get_running_loop()
        memo = self._on_loop
        if memo[0] is loop:
            return memo[1], memo[2]
        client = _async_client(loop, self.project, self.database, self.timeout)
        collection = client.collection(self.collection_id)
        self._on_loop = (loop, client, collection)
        return client, collection

    def _error(self, exc: BaseException, key: str | None = None) -> ProviderError:
        about = f"{self.name}: Firestore collection {self.collection_id}" + (
            f", key {key!r}" if key is not None else ""
        )
        return google_error(exc, about, resource=self.name)

    def _create_blocking(self) -> None:
        # A collection exists once it holds a document: nothing to create. Reaching the
        # database here checks the configuration and opens the channel before first use.
        self._ping_blocking()

    def _ping_blocking(self) -> None:
        try:
            self.collection.document("~ping").get()
        except Exception as exc:
            raise self._error(exc) from exc

    # -- documents -----------------------------------------------------------------------

    @staticmethod
    def _fields(data: bytes, expires_at: datetime | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"d": data.decode(), "v": new_version()}
        if expires_at is not None:
            fields["x"] = expires_at
        return fields

    def _decode(self, snapshot: Any, now: datetime) -> Item | None:
        if not snapshot.exists:
            return None
        return self._item(snapshot.id, snapshot.to_dict(), now)

    @staticmethod
    def _item(doc_id: str, fields: Any, now: datetime) -> Item | None:
        expires = fields.get("x")
        if expires is not None and expires <= now:
            return None
        return Item(decode_key(doc_id[1:]), json.loads(fields["d"]), fields["v"], expires)

    def _conflict(self, key: str, current: Item | None, if_version: str | None) -> Conflict:
        found = "is absent" if current is None else f"is at version {current.version}"
        return Conflict(f"{self.name}: key {key!r} {found}, not at version {if_version}", resource=self.name)

    # get: one call, written out for each face. It is the unary GetDocument RPC, through the
    # client's own API layer and request metadata, not DocumentReference.get, which sends the
    # streaming BatchGetDocuments and returns on its first message, leaving the call open.
    # From async code that open call is a hazard: its status arrives for a loop that may be
    # closed by then, and grpc's poller, shared by every loop, raises "Event loop is closed"
    # on whichever loop drains it next. A unary call ends with its one reply, and is faster.

    def _get_blocking(self, key: str) -> Item | None:
        from google.api_core.exceptions import NotFound
        from google.cloud.firestore_v1._helpers import decode_dict

        client = self.client
        doc_id = _doc_id(key)
        try:
            document = client._firestore_api.get_document(
                request={"name": self.collection.document(doc_id)._document_path}, metadata=client._rpc_metadata
            )
        except NotFound:
            return None
        except Exception as exc:
            raise self._error(exc, key) from exc
        return self._item(doc_id, decode_dict(document.fields, client), datetime.now(UTC))

    async def _get(self, key: str) -> Item | None:
        from google.api_core.exceptions import NotFound
        from google.cloud.firestore_v1._helpers import decode_dict

        client, collection = self._async_face()
        doc_id = _doc_id(key)
        try:
            document = await client._firestore_api.get_document(
                request={"name": collection.document(doc_id)._document_path}, metadata=client._rpc_metadata
            )
        except NotFound:
            return None
        except Exception as exc:
            raise self._error(exc, key) from exc
        return self._item(doc_id, decode_dict(document.fields, client), datetime.now(UTC))

    # put

    def _put_blocking(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        return _run(self._put_flow(self.client, self.collection, key, data, if_version, if_absent, expires_at))

    async def _put(
        self,
        key: str,
        value: dict[str, Any],
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> str:
        client, collection = self._async_face()
        return await _arun(self._put_flow(client, collection, key, data, if_version, if_absent, expires_at))

    def _put_flow(
        self,
        client: Any,
        collection: Any,
        key: str,
        data: bytes,
        if_version: str | None,
        if_absent: bool,
        expires_at: datetime | None,
    ) -> Flow[str]:
        ref = collection.document(_doc_id(key))
        fields = self._fields(data, expires_at)
        try:
            if if_version is None and not if_absent:
                yield ref.set(fields)
                return str(fields["v"])
            if if_absent:
                try:
                    yield ref.create(fields)
                    return str(fields["v"])
                except Exception as exc:
                    from google.api_core.exceptions import AlreadyExists

                    if not isinstance(exc, AlreadyExists):
                        raise
                # it exists: write only if it has expired, and has not moved since we looked
                snapshot = yield from _read(client, ref)
                if self._decode(snapshot, datetime.now(UTC)) is not None or not snapshot.exists:
                    raise Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
                return (yield from self._replace(client, ref, fields, snapshot.update_time, key, None))
            snapshot = yield from _read(client, ref)
            current = self._decode(snapshot, datetime.now(UTC))
            if current is None or current.version != if_version:
                raise self._conflict(key, current, if_version)
            return (yield from self._replace(client, ref, fields, snapshot.update_time, key, if_version))
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc, key) from exc

    def _replace(
        self, client: Any, ref: Any, fields: dict[str, Any], update_time: Any, key: str, if_version: str | None
    ) -> Flow[str]:
        """Overwrite every field of a document that must still be at ``update_time``."""
        from google.api_core.exceptions import FailedPrecondition
        from google.cloud.firestore import DELETE_FIELD

        updates = dict(fields)
        updates.setdefault("x", DELETE_FIELD)
        try:
            yield ref.update(updates, option=client.write_option(last_update_time=update_time))
        except FailedPrecondition as exc:
            moved = f"not at version {if_version}" if if_version else "already exists"
            raise Conflict(f"{self.name}: key {key!r} moved: {moved}", resource=self.name) from exc
        return str(fields["v"])

    # put_if_newer

    def _put_if_newer_blocking(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        return _run(self._newer_flow(self.client, self.collection, key, data, order, expires_at))

    async def _put_if_newer(
        self, key: str, value: dict[str, Any], data: bytes, order: str, expires_at: datetime | None
    ) -> str | None:
        client, collection = self._async_face()
        return await _arun(self._newer_flow(client, collection, key, data, order, expires_at))

    def _newer_flow(
        self, client: Any, collection: Any, key: str, data: bytes, order: str, expires_at: datetime | None
    ) -> Flow[str | None]:
        """Read, compare orders, write under a precondition that what was read has not moved."""
        from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound
        from google.cloud.firestore import DELETE_FIELD

        ref = collection.document(_doc_id(key))
        for _ in range(_NEWER_TRIES):
            fields = self._fields(data, expires_at)
            try:
                snapshot = yield from _read(client, ref)
                current = self._decode(snapshot, datetime.now(UTC))
                if current is not None and order_of(current.value) >= order:
                    return None
                try:
                    if snapshot.exists:
                        updates = {"x": DELETE_FIELD, **fields}
                        yield ref.update(updates, option=client.write_option(last_update_time=snapshot.update_time))
                    else:
                        yield ref.create(fields)
                except (AlreadyExists, FailedPrecondition, NotFound):
                    continue  # written or deleted meanwhile: compare again
                return str(fields["v"])
            except ProviderError:
                raise
            except Exception as exc:
                raise self._error(exc, key) from exc
        raise Conflict(f"{self.name}: key {key!r} kept moving; put_if_newer gave up", resource=self.name)

    # delete

    def _delete_blocking(self, key: str, if_version: str | None) -> bool:
        return _run(self._delete_flow(self.client, self.collection, key, if_version))

    async def _delete(self, key: str, if_version: str | None) -> bool:
        client, collection = self._async_face()
        return await _arun(self._delete_flow(client, collection, key, if_version))

    def _delete_flow(self, client: Any, collection: Any, key: str, if_version: str | None) -> Flow[bool]:
        from google.api_core.exceptions import FailedPrecondition, NotFound

        ref = collection.document(_doc_id(key))
        for _ in range(8):
            try:
                snapshot = yield from _read(client, ref)
                current = self._decode(snapshot, datetime.now(UTC))
                if if_version is not None and (current is None or current.version != if_version):
                    raise self._conflict(key, current, if_version)
                if not snapshot.exists:
                    return False
                try:
                    yield ref.delete(option=client.write_option(last_update_time=snapshot.update_time))
                except (FailedPrecondition, NotFound):
                    if if_version is not None:
                        raise Conflict(
                            f"{self.name}: key {key!r} moved: not at version {if_version}", resource=self.name
                        ) from None
                    continue  # written or deleted meanwhile: look again
                return current is not None
            except ProviderError:
                raise
            except Exception as exc:
                raise self._error(exc, key) from exc
        raise Conflict(f"{self.name}: key {key!r} kept moving while being deleted", resource=self.name)

    # scan

    def _scan_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> Page:
        return _run(self._scan_flow(self.collection, prefix, limit, cursor))

    async def _scan_page(self, prefix: str, limit: int, cursor: str | None) -> Page:
        return await _arun(self._scan_flow(self._async_face()[1], prefix, limit, cursor))

    def _scan_flow(self, coll: Any, prefix: str, limit: int, cursor: str | None) -> Flow[Page]:
        from google.cloud.firestore import FieldFilter

        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
        encoded = _doc_id(prefix) if prefix else ""
        query = coll
        if cursor is not None:
            query = query.where(filter=FieldFilter("__name__", ">", coll.document(_doc_id(cursor))))
        elif encoded:
            query = query.where(filter=FieldFilter("__name__", ">=", coll.document(encoded)))
        if encoded:
            # encoded ids hold only [-.0-9A-Z_a-z~] and '~' is followed by a hex digit, so
            # '~~' sorts after every id that extends the prefix ('/' cannot appear in an id)
            query = query.where(filter=FieldFilter("__name__", "<", coll.document(encoded + "~~")))
        query = query.order_by("__name__")
        items: list[Item] = []
        now = datetime.now(UTC)
        while True:
            # One more than asked, to know whether another page follows; expired items are
            # dropped here, so the query may run again to fill the page.
            want = limit + 1 - len(items)
            try:
                snapshots = yield _All(query.limit(want).stream())
            except Exception as exc:
                raise self._error(exc) from exc
            for snapshot in snapshots:
                item = self._decode(snapshot, now)
                if item is not None:
                    items.append(item)
            if len(items) > limit or len(snapshots) < want:
                break
            query = query.start_after(snapshots[-1])
        more = len(items) > limit
        items = items[:limit]
        return Page(items, items[-1].key if more else None)

    # batches

    def _get_many_blocking(self, keys: list[str]) -> dict[str, Item]:
        return _run(self._get_many_flow(self.client, self.collection, keys))

    async def _get_many(self, keys: list[str]) -> dict[str, Item]:
        client, collection = self._async_face()
        return await _arun(self._get_many_flow(client, collection, keys))

    def _get_many_flow(self, client: Any, collection: Any, keys: list[str]) -> Flow[dict[str, Item]]:
        found: dict[str, Item] = {}
        for start in range(0, len(keys), _BATCH_GET):
            refs = [collection.document(_doc_id(key)) for key in keys[start : start + _BATCH_GET]]
            try:
                snapshots: Iterable[Any] = yield _All(client.get_all(refs))
            except Exception as exc:
                raise self._error(exc) from exc
            now = datetime.now(UTC)
            for snapshot in snapshots:
                item = self._decode(snapshot, now)
                if item is not None:
                    found[item.key] = item
        return {key: found[key] for key in keys if key in found}

    def _put_many_blocking(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        return _run(self._put_many_flow(self.client, self.collection, entries, expires_at))

    async def _put_many(
        self, entries: list[tuple[str, dict[str, Any], bytes]], expires_at: datetime | None
    ) -> dict[str, str]:
        client, collection = self._async_face()
        return await _arun(self._put_many_flow(client, collection, entries, expires_at))

    def _put_many_flow(
        self,
        client: Any,
        collection: Any,
        entries: list[tuple[str, dict[str, Any], bytes]],
        expires_at: datetime | None,
    ) -> Flow[dict[str, str]]:
        versions: dict[str, str] = {}
        for start in range(0, len(entries), _BATCH_WRITE):
            batch = client.batch()
            for key, _, data in entries[start : start + _BATCH_WRITE]:
                fields = self._fields(data, expires_at)
                batch.set(collection.document(_doc_id(key)), fields)
                versions[key] = fields["v"]
            try:
                yield batch.commit()
            except Exception as exc:
                raise self._error(exc) from exc
        return versions
