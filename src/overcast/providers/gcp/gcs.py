"""Objects in Cloud Storage: ``gs://BUCKET/prefix?project=P``.

Keys live under the URL's path as a prefix (``gs://media/app/avatars`` stores ``k`` as
``app/avatars/k``). The ETag Overcast reports is the object's *generation*, because
generations are what Cloud Storage preconditions test: ``if_absent`` is
``ifGenerationMatch=0`` and ``if_etag=g`` is ``ifGenerationMatch=g``; a lost race is
HTTP 412, raised as :class:`~overcast.errors.Conflict`.

Bytes up to ``resumable_threshold`` (URL option, 8 MiB by default) go in one multipart
upload; larger bodies and every stream go through a resumable upload session in chunks of
``chunk_size`` (URL option, 8 MiB; a multiple of 256 KiB), so a stream is never held in
memory whole. Range reads send ``Range`` headers; ``stream`` reads in chunks.

Signed URLs are V4 signatures. They need a signer: a service-account key
(``GOOGLE_APPLICATION_CREDENTIALS`` naming a key file, or default credentials that can
sign), or, on Cloud Run and Functions, the runtime's service account through the IAM
``signBlob`` API (``roles/iam.serviceAccountTokenCreator`` on itself). Against an emulator
(``STORAGE_EMULATOR_HOST``) the URL points at the emulator.

URL options: ``project``, ``resumable_threshold``, ``chunk_size``.

IAM: ``roles/storage.objectUser`` on the bucket (``roles/storage.admin`` for ``create()``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

from ...errors import ConfigError, Conflict, InvalidArgument, NotFound, NotSupported, ProviderError
from ...resources import bridge
from ...resources.blob import BlobLimits, BlobStore, ListPage, ObjectInfo
from ...resources.url import ResourceURL
from ._client import anonymous, emulated, google_error, project_of
from ._retries import DEFAULT_TIMEOUT, bounded, counted, deadline

__all__ = ["GCSBlobStore"]

_MIB = 1024 * 1024
_CHUNK_QUANTUM = 256 * 1024

_lock = threading.Lock()
_clients: dict[str | None, Any] = {}
_policies: dict[tuple[bool, float], Any] = {}


def _policy(*, conditional: bool = False, seconds: float = DEFAULT_TIMEOUT) -> Any:
    """Storage's default retry policy (``conditional``: the one that retries only calls a
    generation precondition makes idempotent), retrying for ``seconds`` at most (not its
    120) and never a refused connection, counting its retries for telemetry."""
    found = _policies.get((conditional, seconds))
    if found is None:
        from google.cloud.storage.retry import DEFAULT_RETRY, DEFAULT_RETRY_IF_GENERATION_SPECIFIED

        policy = DEFAULT_RETRY_IF_GENERATION_SPECIFIED if conditional else DEFAULT_RETRY
        found = _policies[(conditional, seconds)] = counted(bounded(policy, seconds), "gcs")
    return found


_signers: dict[str, Any] = {}


def _timestamp(value: str | None) -> datetime | None:
    """An RFC 3339 time of the JSON API (``2026-01-02T03:04:05.678Z``) as an aware datetime.

    ``datetime.fromisoformat`` reads it in about a microsecond; ``Blob.updated`` goes through
    ``strptime``, twenty times slower, on every put and head."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        from google.cloud._helpers import _rfc3339_nanos_to_datetime

        return _rfc3339_nanos_to_datetime(value)  # type: ignore[no-any-return,no-untyped-call]


def _client(project: str | None) -> Any:
    with _lock:
        found = _clients.get(project)
        if found is None:
            from google.cloud import storage  # type: ignore[attr-defined]

            if emulated("STORAGE_EMULATOR_HOST"):
                found = storage.Client(project=project or "overcast-local", credentials=anonymous())
            else:
                found = storage.Client(project=project)
            _clients[project] = found
        return found


class GCSBlobStore(BlobStore):
    """Objects in a Cloud Storage bucket under a prefix; see the module docstring.

    Capabilities: ``url``, ``conditional``, ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"url", "conditional", "multiprocess"})
    # object names are at most 1,024 bytes with the prefix; custom metadata is at most 8 KiB
    limits: ClassVar[BlobLimits] = BlobLimits(max_key_bytes=1024, chunk_size=_MIB)
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        bucket = self.location.host
        if not bucket or len(bucket) > 222 or not all(c.isalnum() or c in "-_." for c in bucket):
            raise ConfigError(f"{self.name}: {bucket!r} in {self.location} is not a Cloud Storage bucket name")
        self.bucket_name = bucket
        prefix = self.location.path.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        room = 1024 - len(self.prefix.encode())
        if room < 1:
            raise ConfigError(f"{self.name}: prefix {prefix!r} leaves no room under the 1024-byte name limit")
        # an instance limit: object names are at most 1,024 bytes, prefix included
        self.limits = BlobLimits(max_key_bytes=room, chunk_size=_MIB)  # type: ignore[misc]
        self.project = project_of(self.location)
        self.timeout = deadline(self.location)
        loc = self.location
        self.resumable_threshold = loc.option_int(
            "resumable_threshold", 8 * _MIB, minimum=1, unit="bytes", resource=self.name
        )
        chunk = loc.option_int("chunk_size", 8 * _MIB, minimum=1, unit="bytes", resource=self.name)
        if chunk % _CHUNK_QUANTUM:
            raise ConfigError(f"{self.name}: option chunk_size must be a multiple of 256 KiB, got {chunk} in {loc}")
        self.chunk_size = chunk
        self._bucket: Any = None

    @property
    def client(self) -> Any:
        """The ``google.cloud.storage.Client`` (shared per project)."""
        return _client(self.project)

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            self._bucket = self.client.bucket(self.bucket_name)
        return self._bucket

    def _error(self, exc: BaseException, key: str | None = None) -> ProviderError:
        about = f"{self.name}: bucket {self.bucket_name}" + (f", key {key!r}" if key is not None else "")
        return google_error(exc, about, resource=self.name)

    def _info(self, blob: Any) -> ObjectInfo:
        fields = blob._properties  # the object resource, as the JSON API returned it
        return ObjectInfo(
            key=blob.name[len(self.prefix) :],
            size=int(fields.get("size") or 0),
            etag=str(fields.get("generation")),
            content_type=fields.get("contentType") or "application/octet-stream",
            metadata=dict(fields.get("metadata") or {}),
            last_modified=_timestamp(fields.get("updated")),
        )

    def _preconditions(self, key: str, if_absent: bool, if_etag: str | None) -> dict[str, Any]:
        if if_absent:
            return {"if_generation_match": 0}
        if if_etag is not None:
            if not if_etag.isdigit():
                raise Conflict(f"{self.name}: key {key!r} is not at ETag {if_etag!r}", resource=self.name)
            return {"if_generation_match": int(if_etag)}
        return {}

    def _conflict(self, key: str, if_absent: bool, if_etag: str | None) -> Conflict:
        if if_absent:
            return Conflict(f"{self.name}: key {key!r} already exists", resource=self.name)
        return Conflict(f"{self.name}: key {key!r} is not at ETag {if_etag!r}", resource=self.name)

    def _put_error(self, exc: BaseException, key: str, if_absent: bool, if_etag: str | None) -> ProviderError:
        error = self._error(exc, key)
        if isinstance(error, Conflict) or (isinstance(error, NotFound) and if_etag is not None):
            conflict = self._conflict(key, if_absent, if_etag)
            conflict.__cause__ = exc
            return conflict
        return error

    # -- life cycle -----------------------------------------------------------------------

    def _create_blocking(self) -> None:
        from google.api_core.exceptions import Conflict as AlreadyOwned

        try:
            self.client.create_bucket(self.bucket_name, retry=_policy(seconds=self.timeout), timeout=self.timeout)
        except AlreadyOwned:
            return
        except Exception as exc:
            raise self._error(exc) from exc

    def _ping_blocking(self) -> None:
        try:
            if not self.bucket.exists(retry=_policy(seconds=self.timeout), timeout=self.timeout):
                raise NotFound(f"{self.name}: bucket {self.bucket_name} does not exist", resource=self.name)
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    # -- writes -----------------------------------------------------------------------------

    def _blob(self, key: str, content_type: str | None = None, metadata: dict[str, str] | None = None) -> Any:
        # no chunk_size: a read is one request, and uploads set theirs
        blob = self.bucket.blob(self.prefix + key)
        if content_type is not None:
            blob.content_type = content_type
        if metadata:
            blob.metadata = metadata
        return blob

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        conditions = self._preconditions(key, if_absent, if_etag)
        blob = self._blob(key, content_type, metadata)
        if len(data) > self.resumable_threshold:
            blob.chunk_size = self.chunk_size  # a resumable session
        try:
            blob.upload_from_string(
                data,
                content_type=content_type,
                retry=_policy(conditional=True, seconds=self.timeout),
                timeout=self.timeout,
                **conditions,
            )
        except Exception as exc:
            raise self._put_error(exc, key, if_absent, if_etag) from exc
        return self._info(blob)

    def _writer(self, key: str, content_type: str, metadata: dict[str, str], conditions: dict[str, Any]) -> Any:
        if conditions:
            # Cloud Storage checks the precondition when the session starts, atomically;
            # fake-gcs-server ignores it on sessions of unknown length, so look first too.
            current = self._head_blocking(key)
            expected = conditions["if_generation_match"]
            if (current is None and expected != 0) or (current is not None and current.etag != str(expected)):
                raise Conflict(f"{self.name}: key {key!r} moved (generation precondition)", resource=self.name)
        blob = self._blob(key, content_type, metadata)
        writer = blob.open(
            "wb",
            chunk_size=self.chunk_size,
            content_type=content_type,
            ignore_flush=True,
            retry=_policy(conditional=True, seconds=self.timeout),
            timeout=self.timeout,
            **conditions,
        )
        return blob, writer

    def _put_stream_blocking(
        self,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        conditions = self._preconditions(key, if_absent, if_etag)
        try:
            blob, writer = self._writer(key, content_type, metadata, conditions)
            with writer:
                for chunk in chunks:
                    writer.write(chunk)
            blob.reload(
                retry=_policy(seconds=self.timeout), timeout=self.timeout
            )  # the writer does not keep the final object resource
        except Exception as exc:
            raise self._put_error(exc, key, if_absent, if_etag) from exc
        return self._info(blob)

    async def _put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        # Gather up to the threshold: a small stream is one request, a large one a resumable session.
        conditions = self._preconditions(key, if_absent, if_etag)
        head: list[bytes] = []
        size = 0
        async for chunk in chunks:
            head.append(bytes(chunk))
            size += len(chunk)
            if size > self.resumable_threshold:
                break
        else:
            return await self._call(self._put_blocking, key, b"".join(head), content_type, metadata, if_absent, if_etag)
        try:
            blob, writer = await bridge.offload(self._writer, key, content_type, metadata, conditions)
            await bridge.offload(writer.write, b"".join(head))
            async for chunk in chunks:
                await bridge.offload(writer.write, bytes(chunk))
            await bridge.offload(writer.close)
            await bridge.offload(blob.reload, retry=_policy(seconds=self.timeout), timeout=self.timeout)
        except Exception as exc:
            raise self._put_error(exc, key, if_absent, if_etag) from exc
        return self._info(blob)

    # -- reads ------------------------------------------------------------------------------

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        from google.api_core.exceptions import RequestRangeNotSatisfiable

        blob = self._blob(key)
        if end is not None and end <= (start or 0):
            if self._head_blocking(key) is None:
                raise NotFound(f"{self.name}: key {key!r} does not exist", resource=self.name)
            return b""
        try:
            return bytes(
                blob.download_as_bytes(
                    start=start,
                    end=None if end is None else end - 1,
                    retry=_policy(seconds=self.timeout),
                    timeout=self.timeout,
                )
            )
        except RequestRangeNotSatisfiable:
            if self._head_blocking(key) is None:
                raise NotFound(f"{self.name}: key {key!r} does not exist", resource=self.name) from None
            return b""
        except Exception as exc:
            raise self._error(exc, key) from exc

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        try:
            reader = self._blob(key).open("rb", chunk_size=self.limits.chunk_size)
        except Exception as exc:
            raise self._error(exc, key) from exc

        def chunks() -> Iterator[bytes]:
            with reader:
                while True:
                    try:
                        chunk = reader.read(self.limits.chunk_size)
                    except Exception as exc:
                        raise self._error(exc, key) from exc
                    if not chunk:
                        return
                    yield chunk

        return chunks()

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        chunks = await bridge.offload(self._stream_blocking, key)
        done = object()
        while True:
            chunk = await bridge.offload(next, chunks, done)
            if chunk is done:
                return
            yield chunk  # type: ignore[misc]

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        try:
            blob = self.bucket.get_blob(self.prefix + key, retry=_policy(seconds=self.timeout), timeout=self.timeout)
        except Exception as exc:
            raise self._error(exc, key) from exc
        return None if blob is None else self._info(blob)

    def _delete_blocking(self, key: str) -> bool:
        from google.api_core.exceptions import NotFound as Absent

        try:
            self._blob(key).delete(retry=_policy(seconds=self.timeout), timeout=self.timeout)
        except Absent:
            return False
        except Exception as exc:
            raise self._error(exc, key) from exc
        return True

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
        try:
            iterator = self.client.list_blobs(
                self.bucket_name,
                prefix=self.prefix + prefix,
                page_size=limit,
                page_token=cursor,
                retry=_policy(seconds=self.timeout),
                timeout=self.timeout,
            )
            page = next(iterator.pages)
            objects = [self._info(blob) for blob in page]
        except StopIteration:
            return ListPage([], None)
        except Exception as exc:
            raise self._error(exc) from exc
        return ListPage(objects, iterator.next_page_token or None)

    # -- signed URLs ------------------------------------------------------------------------

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        return await self._call(self._url_blocking, key, expires, method)

    def _url_blocking(self, key: str, expires: timedelta, method: str) -> str:
        if not timedelta(seconds=1) <= expires <= timedelta(days=7):
            raise InvalidArgument(
                f"{self.name}: a signed URL for {key!r} lasts 1 s to 7 days, got {expires}", resource=self.name
            )
        credentials, extra = self._signer()
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or None
        if endpoint is not None and "://" not in endpoint:
            endpoint = "http://" + endpoint
        try:
            return str(
                self._blob(key).generate_signed_url(
                    version="v4",
                    expiration=expires,
                    method=method,
                    credentials=credentials,
                    api_access_endpoint=endpoint,
                    **extra,
                )
            )
        except Exception as exc:
            raise self._error(exc, key) from exc

    def _signer(self) -> tuple[Any, dict[str, Any]]:
        """Credentials that can sign: a key file, default credentials with a signer, or IAM signBlob."""
        path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        with _lock:
            if path and path in _signers:
                return _signers[path], {}
        if path:
            from google.oauth2 import service_account

            try:
                signer = service_account.Credentials.from_service_account_file(path)  # type: ignore[no-untyped-call]
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{self.name}: cannot load a signing key from {path}: {exc}") from exc
            with _lock:
                _signers[path] = signer
            return signer, {}
        import google.auth
        from google.auth import exceptions as auth_errors
        from google.auth.transport.requests import Request

        try:
            credentials, _ = google.auth.default()
        except auth_errors.DefaultCredentialsError as exc:
            raise NotSupported(
                f"{self.name}: signing a URL needs a service-account key or default credentials ({exc})",
                resource=self.name,
            ) from exc
        if hasattr(credentials, "sign_bytes") and getattr(credentials, "signer", None) is not None:
            return credentials, {}
        email = getattr(credentials, "service_account_email", None)
        if not email:
            raise NotSupported(f"{self.name}: these credentials cannot sign URLs", resource=self.name)
        credentials.refresh(Request())  # type: ignore[no-untyped-call]
        return None, {"service_account_email": email, "access_token": credentials.token}
