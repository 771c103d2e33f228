"""``azblob://CONTAINER/prefix``: objects in Azure Blob storage (block blobs).

Each key is the blob ``<prefix>/<name>``, where ``name`` is the key with the bytes
``0x00`` to ``0x21`` written ``!hh`` (control characters cannot travel in the listing's
XML, and ``!`` sorts below every byte it does not escape, so listings stay in key
order), ``\\`` written ``!5C`` (Azure turns it into ``/``), and a path segment that is
only dots, or a trailing dot, written with ``!2E`` (HTTP clients would fold ``a/./b``
into ``a/b``). Keys with a backslash or such dots are the only ones that list out of
code-point order.

A put of bytes up to ``single_put_mb`` (option, default 8 MiB) is one Put Blob, and so is
a stream that ends before its first block is full; larger bytes and longer streams go up
as blocks of ``block_mb`` (default 4 MiB) committed once (Put Block List), so nothing
shows until the whole object is there. ``if_absent`` and ``if_etag`` travel as
``If-None-Match: *`` / ``If-Match`` on the single request that makes the object visible,
so they are atomic. ``url`` signs a service SAS with the account key of the connection
string, or a user delegation SAS with Entra ID.

The blocking face uses ``azure.storage.blob``; the async face ``azure.storage.blob.aio``,
one client per event loop (see ``_credentials``). Each operation is written once, as a flow
that both faces run (see ``_flow``), so naming, conditions and errors cannot drift apart.
"""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from azure.core import MatchConditions
from azure.core import exceptions as az
from azure.storage.blob import BlobServiceClient, ContentSettings

from ...errors import Conflict, InvalidArgument, NotFound
from ...resources.blob import BlobLimits, BlobStore, ListPage, ObjectInfo
from ...resources.url import ResourceURL
from ._credentials import LoopClient, error, service_client
from ._flow import Blocking, Flow, Next, NextPage, arun, run

__all__ = ["AzureBlobStore", "decode_name", "encode_name"]

_HEX = "0123456789ABCDEF"
_MB = 1024 * 1024
MAX_NAME_CHARS = 1024
_CLIENT_CACHE = 256
#: the .aio SDK sends a Put Blob body as bytes, which aiohttp warns against past 1 MiB
#: (it may hold up the loop): larger single puts of the async face go through a worker thread
_AIOHTTP_BYTES = 1024 * 1024


def encode_name(key: str) -> str:
    """The blob name part of ``key`` (see the module's docstring); reversible by :func:`decode_name`."""
    out: list[str] = []
    for char in key:
        code = ord(char)
        out.append(f"!{_HEX[code >> 4]}{_HEX[code & 15]}" if code <= 0x21 or code == 0x5C else char)
    text = "".join(out)
    if "." in text:
        segments = text.split("/")
        segments = [seg.replace(".", "!2E") if seg and not seg.strip(".") else seg for seg in segments]
        text = "/".join(segments)
        if text.endswith("."):
            text = text[:-1] + "!2E"
    return text


def decode_name(name: str) -> str:
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        char = name[i]
        if char == "!":
            out.append(chr(int(name[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"')


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class AzureBlobStore(BlobStore):
    """Objects in one Azure Blob container, under an optional prefix.

    Options: ``single_put_mb`` (default 8), ``block_mb`` (default 4), ``account`` /
    ``endpoint`` / ``connection_env`` (see ``_credentials``).
    Capabilities: ``url``, ``conditional``, ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"url", "conditional", "multiprocess"})
    limits: ClassVar[BlobLimits] = BlobLimits(max_metadata_bytes=2048)
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "azure_blob"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        loc = self.location
        if not loc.host:
            raise InvalidArgument(f"{loc}: azblob:// needs a container name: azblob://CONTAINER/prefix")
        self.container_name = loc.host
        prefix = loc.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.single_put = int(float(loc.option("single_put_mb") or 8) * _MB)
        self.block_size = max(1, int(float(loc.option("block_mb") or 4) * _MB))
        self._service: BlobServiceClient = service_client(loc, "blob", BlobServiceClient)
        self._container = self._service.get_container_client(self.container_name)
        self._blobs: dict[str, Any] = {}
        self._aio = LoopClient(loc, "blob", lambda service: service.get_container_client(self.container_name))
        self._aio_blobs: tuple[Any, dict[str, Any]] = (None, {})  # (.aio container client, its blob clients)

    # -- names -----------------------------------------------------------------------------

    def _blob_name(self, key: str) -> str:
        name = self.prefix + encode_name(key)
        if len(name) > MAX_NAME_CHARS:
            raise InvalidArgument(
                f"{self.name}: key {key[:40]!r}... makes a blob name of {len(name)} characters; "
                f"Azure's limit is {MAX_NAME_CHARS}",
                resource=self.name,
            )
        return name

    def _blob(self, key: str) -> Any:
        """The SDK's client of ``key``'s blob; kept, since building one costs about as much as a request."""
        found = self._blobs.get(key)
        if found is None:
            if len(self._blobs) >= _CLIENT_CACHE:
                self._blobs.clear()
            found = self._blobs[key] = self._container.get_blob_client(self._blob_name(key))
        return found

    async def _aio_blob(self, key: str) -> Any:
        """:meth:`_blob` for the ``.aio`` container client of the running loop."""
        container = await self._aio()
        owner, blobs = self._aio_blobs
        if owner is not container:
            blobs = {}
            self._aio_blobs = (container, blobs)
        found = blobs.get(key)
        if found is None:
            if len(blobs) >= _CLIENT_CACHE:
                blobs.clear()
            found = blobs[key] = container.get_blob_client(self._blob_name(key))
        return found

    def _key(self, blob_name: str) -> str:
        return decode_name(blob_name[len(self.prefix) :])

    def _fail(self, exc: Exception, what: str) -> Exception:
        return error(exc, self.name, what)

    # -- life cycle ------------------------------------------------------------------------

    def _create_blocking(self) -> None:
        try:
            self._container.create_container()
        except az.ResourceExistsError:
            pass
        except az.AzureError as exc:
            raise self._fail(exc, "create container") from exc

    def _ping_blocking(self) -> None:
        try:
            self._container.get_container_properties()
        except az.AzureError as exc:
            raise self._fail(exc, "ping") from exc

    # -- requests and answers ----------------------------------------------------------------

    @staticmethod
    def _conditions(if_absent: bool, if_etag: str | None) -> dict[str, Any]:
        if if_absent:
            return {"match_condition": MatchConditions.IfMissing}  # If-None-Match: * (no etag: the SDK would leak it)
        if if_etag is not None:
            return {"etag": _quoted(if_etag), "match_condition": MatchConditions.IfNotModified}
        return {}

    def _info(self, key: str, size: int, etag: str, ctype: str, meta: dict[str, str], when: Any) -> ObjectInfo:
        return ObjectInfo(key, size, _etag(etag), ctype, dict(meta), when)

    def _conflict(self, exc: Exception, key: str, if_absent: bool, if_etag: str | None) -> Exception:
        if isinstance(exc, (az.ResourceExistsError, az.ResourceModifiedError)) or (
            getattr(exc, "status_code", None) in (409, 412) and (if_absent or if_etag is not None)
        ):
            what = "exists" if if_absent else f"no longer has ETag {if_etag!r}"
            return Conflict(f"{self.name}: object {key!r} {what}", resource=self.name)
        if isinstance(exc, az.ResourceNotFoundError) and if_etag is not None:
            return Conflict(f"{self.name}: object {key!r} does not exist (if_etag={if_etag!r})", resource=self.name)
        return self._fail(exc, f"put {key!r}")

    def _blocks(self, buffer: bytearray, block_ids: list[str], *, last: bool) -> Iterator[tuple[str, io.BytesIO, int]]:
        """Take whole blocks off ``buffer`` (and what is left, if ``last``): (block id, body, length) to
        stage. The body is a stream: the ``.aio`` SDK sends bytes as they are, which aiohttp warns
        against past 1 MiB."""
        while len(buffer) >= self.block_size or (last and (buffer or not block_ids)):
            data = bytes(buffer[: self.block_size])
            del buffer[: self.block_size]
            block_id = base64.b64encode(f"{len(block_ids):08d}-{uuid.uuid4().hex}".encode()).decode()
            block_ids.append(block_id)
            yield block_id, io.BytesIO(data), len(data)

    @staticmethod
    def _range(start: int | None, end: int | None) -> tuple[int | None, int | None]:
        """(offset, length) of ``[start:end]`` for download_blob; offset None for the whole object."""
        offset = start or 0
        length = None if end is None else end - offset
        return (offset if (offset or length is not None) else None), length

    def _from_properties(self, key: str, props: Any) -> ObjectInfo:
        settings = props.content_settings
        return ObjectInfo(
            key,
            int(props.size or 0),
            _etag(props.etag),
            (settings.content_type if settings else None) or "application/octet-stream",
            dict(props.metadata or {}),
            props.last_modified,
        )

    # -- the operations: each one flow, run by both faces (see ``_flow``) ---------------------

    def _put_flow(
        self,
        blob: Any,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> Flow[ObjectInfo]:
        if len(data) > self.single_put:
            return (yield from self._upload_flow(blob, key, iter([data]), content_type, metadata, if_absent, if_etag))
        args = {
            "overwrite": not if_absent,
            "length": len(data),
            "content_settings": ContentSettings(content_type=content_type),
            "metadata": metadata,
            "max_concurrency": 1,
            **self._conditions(False, if_etag),
        }
        try:
            if len(data) > _AIOHTTP_BYTES:  # one Put Blob from the blocking client (a worker thread, if async)
                result = yield Blocking(self._blob(key).upload_blob, data, **args)
            else:
                result = yield blob.upload_blob(data, **args)
        except az.AzureError as exc:
            raise self._conflict(exc, key, if_absent, if_etag) from exc
        return self._info(key, len(data), result["etag"], content_type, metadata, result.get("last_modified"))

    def _upload_flow(
        self,
        blob: Any,
        key: str,
        chunks: Any,
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> Flow[ObjectInfo]:
        """Stage ``chunks`` (an iterator, or an async one) as blocks, then commit them in one
        request; what ends before its first block is full is one Put Blob."""
        block_ids: list[str] = []
        buffer = bytearray()
        size = 0
        try:
            while (chunk := (yield Next(chunks))) is not None:
                buffer += chunk
                size += len(chunk)
                for block_id, body, length in self._blocks(buffer, block_ids, last=False):
                    yield blob.stage_block(block_id, body, length=length)
            if not block_ids and len(buffer) <= self.single_put:
                return (yield from self._put_flow(blob, key, bytes(buffer), content_type, metadata, if_absent, if_etag))
            for block_id, body, length in self._blocks(buffer, block_ids, last=True):
                yield blob.stage_block(block_id, body, length=length)
        except az.AzureError as exc:
            raise self._fail(exc, f"upload block of {key!r}") from exc
        try:
            result = yield blob.commit_block_list(
                block_ids,
                content_settings=ContentSettings(content_type=content_type),
                metadata=metadata,
                **self._conditions(if_absent, if_etag),
            )
        except az.AzureError as exc:
            raise self._conflict(exc, key, if_absent, if_etag) from exc
        return self._info(key, size, result["etag"], content_type, metadata, result.get("last_modified"))

    def _get_flow(self, blob: Any, key: str, start: int | None, end: int | None) -> Flow[bytes]:
        first, length = self._range(start, end)
        try:
            if length == 0:
                yield blob.get_blob_properties()
                return b""
            downloader = yield blob.download_blob(offset=first, length=length, max_concurrency=1)
            return bytes((yield downloader.readall()))
        except az.ResourceNotFoundError as exc:
            raise NotFound(f"{self.name}: no object {key!r}", resource=self.name) from exc
        except az.AzureError as exc:
            if isinstance(exc, az.HttpResponseError) and exc.status_code == 416:
                return b""  # a range past the end: an empty slice
            raise self._fail(exc, f"get {key!r}") from exc

    def _open_flow(self, blob: Any, key: str) -> Flow[Any]:
        """The downloader of the whole of ``key``, for :meth:`_chunk_flow` to read."""
        try:
            return (yield blob.download_blob(max_concurrency=1))
        except az.ResourceNotFoundError as exc:
            raise NotFound(f"{self.name}: no object {key!r}", resource=self.name) from exc
        except az.AzureError as exc:
            raise self._fail(exc, f"get {key!r}") from exc

    def _chunk_flow(self, chunks: Any, key: str) -> Flow[bytes | None]:
        """The next chunk of a download (of its ``chunks()`` iterator), None after the last."""
        try:
            while (chunk := (yield Next(chunks))) is not None:
                if chunk:
                    return bytes(chunk)
        except az.AzureError as exc:
            raise self._fail(exc, f"read {key!r}") from exc
        return None

    def _head_flow(self, blob: Any, key: str) -> Flow[ObjectInfo | None]:
        try:
            props = yield blob.get_blob_properties()
        except az.ResourceNotFoundError:
            return None
        except az.AzureError as exc:
            raise self._fail(exc, f"head {key!r}") from exc
        return self._from_properties(key, props)

    def _delete_flow(self, blob: Any, key: str) -> Flow[bool]:
        try:
            yield blob.delete_blob()
        except az.ResourceNotFoundError:
            return False
        except az.AzureError as exc:
            raise self._fail(exc, f"delete {key!r}") from exc
        return True

    def _list_flow(self, container: Any, prefix: str, limit: int, cursor: str | None) -> Flow[ListPage]:
        start = self.prefix + (encode_name(prefix) if prefix else "")
        # A prefix ending in dots may encode differently as part of a longer key: list from
        # the stable part and filter.
        native = start.rstrip(".") if prefix.endswith(".") else start
        try:
            pager = container.list_blobs(
                name_starts_with=native or None, include=["metadata"], results_per_page=limit
            ).by_page(continuation_token=cursor)
            page = yield NextPage(pager)
            token = pager.continuation_token
        except az.AzureError as exc:
            raise self._fail(exc, "list") from exc
        objects = [self._from_properties(self._key(props.name), props) for props in page or []]
        if native != start:
            objects = [info for info in objects if info.key.startswith(prefix)]
        return ListPage(objects, token or None)

    # -- the faces: azure.storage.blob, and azure.storage.blob.aio on the running loop -------

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        return run(self._put_flow(self._blob(key), key, data, content_type, metadata, if_absent, if_etag))

    async def _put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        blob = await self._aio_blob(key)
        return await arun(self._put_flow(blob, key, data, content_type, metadata, if_absent, if_etag))

    def _put_stream_blocking(
        self,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        return run(self._upload_flow(self._blob(key), key, chunks, content_type, metadata, if_absent, if_etag))

    async def _put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        blob = await self._aio_blob(key)
        return await arun(self._upload_flow(blob, key, chunks, content_type, metadata, if_absent, if_etag))

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        return run(self._get_flow(self._blob(key), key, start, end))

    async def _get(self, key: str, start: int | None, end: int | None) -> bytes:
        return await arun(self._get_flow(await self._aio_blob(key), key, start, end))

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        chunks = run(self._open_flow(self._blob(key), key)).chunks()  # opened now: NotFound before the first chunk
        return iter(lambda: run(self._chunk_flow(chunks, key)), None)

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        chunks = (await arun(self._open_flow(await self._aio_blob(key), key))).chunks()
        while (chunk := await arun(self._chunk_flow(chunks, key))) is not None:
            yield chunk

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        return run(self._head_flow(self._blob(key), key))

    async def _head(self, key: str) -> ObjectInfo | None:
        return await arun(self._head_flow(await self._aio_blob(key), key))

    def _delete_blocking(self, key: str) -> bool:
        return run(self._delete_flow(self._blob(key), key))

    async def _delete(self, key: str) -> bool:
        return await arun(self._delete_flow(await self._aio_blob(key), key))

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        return run(self._list_flow(self._container, prefix, limit, cursor))

    async def _list_page(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        return await arun(self._list_flow(await self._aio(), prefix, limit, cursor))

    # -- signed URLs -----------------------------------------------------------------------

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        return await self._call(self._url_blocking, key, expires, method)

    def _url_blocking(self, key: str, expires: timedelta, method: str) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        name = self._blob_name(key)
        blob = self._container.get_blob_client(name)
        now = datetime.now(UTC)
        expiry = now + expires
        permission = BlobSasPermissions(read=True) if method == "GET" else BlobSasPermissions(create=True, write=True)
        credential = self._service.credential
        account_key = getattr(credential, "account_key", None)
        try:
            if account_key:
                sas = generate_blob_sas(
                    self._service.account_name or "",
                    self.container_name,
                    name,
                    account_key=account_key,
                    permission=permission,
                    expiry=expiry,
                    start=now - timedelta(minutes=5),
                )
            else:
                delegation = self._service.get_user_delegation_key(now - timedelta(minutes=5), expiry)
                sas = generate_blob_sas(
                    self._service.account_name or "",
                    self.container_name,
                    name,
                    user_delegation_key=delegation,
                    permission=permission,
                    expiry=expiry,
                    start=now - timedelta(minutes=5),
                )
        except az.AzureError as exc:
            raise self._fail(exc, f"sign a URL for {key!r}") from exc
        return f"{blob.url}?{sas}"

    def close(self) -> None:
        return None
