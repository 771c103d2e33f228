"""Objects in an S3 bucket, optionally under a key prefix: ``s3://BUCKET/prefix?region=eu-west-1``.

Bodies up to ``multipart_threshold`` (8 MiB) go in one ``PutObject``; larger bodies and
streams that grow past it are uploaded in parts of ``part_size`` (8 MiB, at least 5 MiB),
reading a stream one part at a time so memory stays bounded. Create-only writes send
``If-None-Match: *`` and ETag-conditional writes ``If-Match``, on ``PutObject`` and on
``CompleteMultipartUpload`` alike, so S3 decides atomically; a lost condition is
:class:`~overcast.errors.Conflict`. Range reads are ``Range`` requests; ``url()`` presigns
``GetObject`` / ``PutObject`` with SigV4 (at most 7 days).

The client is botocore's (not obstore): on moto's server they move bytes at the same rate
within noise, botocore is already loaded beside DynamoDB and SQS in an AWS function, and
it has presigning and every conditional header; ``benchmarks/aws_s3_clients.py`` has the
figures.

Listing (``ListObjectsV2``) reports key, size, ETag and time, not content type or
metadata (S3 does not return them there); ``head()`` does.

URL options: ``region``, ``endpoint``, ``multipart_threshold``, ``part_size`` (bytes).

IAM: ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject``, ``s3:ListBucket``;
``s3:CreateBucket`` for ``create()``; multipart uploads need ``s3:AbortMultipartUpload``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, timedelta
from typing import Any, ClassVar

from ...errors import ConfigError, Conflict, InvalidArgument, NotFound, ProviderError
from ...resources import bridge
from ...resources.blob import BlobLimits, BlobStore, ListPage, ObjectInfo
from ...resources.url import ResourceURL
from ._client import aws_error, client, error_code, region_of

__all__ = ["S3BlobStore"]

_MIB = 1024 * 1024
_MIN_PART = 5 * _MIB
_MAX_KEY = 1024
_MAX_PRESIGN = 7 * 24 * 3600
_ABSENT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class S3BlobStore(BlobStore):
    """Objects in S3. Capabilities: ``url``, ``conditional``, ``multiprocess``."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"url", "conditional", "multiprocess"})
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.bucket = self.location.host
        if not self.bucket:
            raise ConfigError(f"{self.name}: {self.location} names no bucket (s3://BUCKET/prefix)")
        path = self.location.path.strip("/")
        self.prefix = path + "/" if path else ""
        room = _MAX_KEY - len(self.prefix.encode())
        if room < 1:
            raise ConfigError(f"{self.name}: the prefix {self.prefix!r} leaves no room for keys")
        # S3's key limit covers the prefix too, so keys get what the prefix leaves.
        self.limits = BlobLimits(max_key_bytes=room)  # type: ignore[misc]
        loc = self.location
        self.multipart_threshold = loc.option_int(
            "multipart_threshold", 8 * _MIB, minimum=1, unit="bytes", resource=self.name
        )
        self.part_size = loc.option_int("part_size", 8 * _MIB, minimum=_MIN_PART, unit="bytes", resource=self.name)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client("s3", self.location)
        return self._client

    def _error(self, exc: Exception, key: str | None = None) -> ProviderError:
        about = f"{self.name}: S3 bucket {self.bucket}" + (f", key {key!r}" if key is not None else "")
        return aws_error(exc, about, resource=self.name)

    def _info(self, key: str, response: dict[str, Any], size: int | None = None) -> ObjectInfo:
        modified = response.get("LastModified")
        return ObjectInfo(
            key=key,
            size=size if size is not None else int(response.get("ContentLength", response.get("Size", 0))),
            etag=str(response.get("ETag", "")).strip('"'),
            content_type=response.get("ContentType") or "application/octet-stream",
            metadata=dict(response.get("Metadata") or {}),
            last_modified=modified.astimezone(UTC) if modified is not None else None,
        )

    # -- life cycle ----------------------------------------------------------------------

    def _create_blocking(self) -> None:
        request: dict[str, Any] = {"Bucket": self.bucket}
        region = region_of(self.location)
        if region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**request)
        except Exception as exc:
            if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(exc) from exc

    def _ping_blocking(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._error(exc) from exc

    # -- writes --------------------------------------------------------------------------

    def _conditions(self, if_absent: bool, if_etag: str | None) -> dict[str, str]:
        if if_absent:
            return {"IfNoneMatch": "*"}
        if if_etag is not None:
            return {"IfMatch": f'"{if_etag}"'}
        return {}

    def _write_error(self, exc: Exception, key: str, if_absent: bool, if_etag: str | None) -> ProviderError:
        code = error_code(exc)
        if (if_absent or if_etag is not None) and (
            code in _CONDITION_CODES or (if_etag is not None and code in _ABSENT_CODES)
        ):
            what = "already exists" if if_absent else f"is absent or no longer has ETag {if_etag}"
            return Conflict(f"{self.name}: key {key!r} {what}", resource=self.name)
        return self._error(exc, key)

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        if len(data) > self.multipart_threshold:
            parts = (data[i : i + self.part_size] for i in range(0, len(data), self.part_size))
            return self._multipart(key, parts, content_type, metadata, if_absent, if_etag)
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                ContentType=content_type,
                Metadata=metadata,
                **self._conditions(if_absent, if_etag),
            )
        except Exception as exc:
            raise self._write_error(exc, key, if_absent, if_etag) from exc
        return ObjectInfo(key, len(data), str(response["ETag"]).strip('"'), content_type, dict(metadata))

    def _put_stream_blocking(
        self,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        first, rest = self._buffer(chunks, self.multipart_threshold + 1)
        if rest is None:
            return self._put_blocking(key, first, content_type, metadata, if_absent, if_etag)
        return self._multipart(key, self._parts(first, rest), content_type, metadata, if_absent, if_etag)

    async def _put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) > self.multipart_threshold:
                break
        else:
            return await self._call(self._put_blocking, key, bytes(buffer), content_type, metadata, if_absent, if_etag)
        # Past the threshold: a multipart upload, reading one part ahead of each upload.
        upload = await self._call(self._start_upload, key, content_type, metadata)
        try:
            etags: list[str] = []
            size = 0
            exhausted = False
            while True:
                while len(buffer) < self.part_size and not exhausted:
                    try:
                        buffer += await anext(chunks)
                    except StopAsyncIteration:
                        exhausted = True
                if not buffer and etags:
                    break
                part = bytes(buffer[: self.part_size])
                del buffer[: self.part_size]
                size += len(part)
                etags.append(await self._call(self._upload_part, key, upload, len(etags) + 1, part))
                if exhausted and not buffer:
                    break
            return await self._call(
                self._complete, key, upload, etags, size, content_type, metadata, if_absent, if_etag
            )
        except BaseException:
            await self._call(self._abort, key, upload)
            raise

    @staticmethod
    def _buffer(chunks: Iterator[bytes], limit: int) -> tuple[bytes, Iterator[bytes] | None]:
        """Read up to ``limit`` bytes; return them and the rest of the stream (None if it ended)."""
        buffer = bytearray()
        for chunk in chunks:
            buffer += chunk
            if len(buffer) >= limit:
                return bytes(buffer), chunks
        return bytes(buffer), None

    def _parts(self, first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
        buffer = bytearray(first)
        for chunk in rest:
            buffer += chunk
            while len(buffer) >= self.part_size:
                yield bytes(buffer[: self.part_size])
                del buffer[: self.part_size]
        if buffer:
            yield bytes(buffer)

    def _start_upload(self, key: str, content_type: str, metadata: dict[str, str]) -> str:
        try:
            response = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.prefix + key, ContentType=content_type, Metadata=metadata
            )
        except Exception as exc:
            raise self._error(exc, key) from exc
        return str(response["UploadId"])

    def _upload_part(self, key: str, upload: str, number: int, data: bytes) -> str:
        try:
            response = self.client.upload_part(
                Bucket=self.bucket, Key=self.prefix + key, UploadId=upload, PartNumber=number, Body=data
            )
        except Exception as exc:
            raise self._error(exc, key) from exc
        return str(response["ETag"])

    def _complete(
        self,
        key: str,
        upload: str,
        etags: list[str],
        size: int,
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        try:
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.prefix + key,
                UploadId=upload,
                MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
                **self._conditions(if_absent, if_etag),
            )
        except Exception as exc:
            raise self._write_error(exc, key, if_absent, if_etag) from exc
        return ObjectInfo(key, size, str(response["ETag"]).strip('"'), content_type, dict(metadata))

    def _abort(self, key: str, upload: str) -> None:
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.prefix + key, UploadId=upload)

    def _multipart(
        self,
        key: str,
        parts: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        upload = self._start_upload(key, content_type, metadata)
        try:
            etags: list[str] = []
            size = 0
            for number, part in enumerate(parts, 1):
                size += len(part)
                etags.append(self._upload_part(key, upload, number, part))
            return self._complete(key, upload, etags, size, content_type, metadata, if_absent, if_etag)
        except BaseException:
            self._abort(key, upload)
            raise

    # -- reads ---------------------------------------------------------------------------

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key}
        if end is not None and end <= (start or 0):
            if self._head_blocking(key) is None:
                raise NotFound(f"{self.name}: no object at key {key!r}", resource=self.name)
            return b""
        if start is not None or end is not None:
            request["Range"] = f"bytes={start or 0}-{'' if end is None else end - 1}"
        try:
            response = self.client.get_object(**request)
        except Exception as exc:
            code = error_code(exc)
            if code in _ABSENT_CODES:
                raise NotFound(f"{self.name}: no object at key {key!r}", resource=self.name) from exc
            if code in ("InvalidRange", "416"):
                return b""  # the range starts past the end: an empty slice, as in Python
            raise self._error(exc, key) from exc
        with contextlib.closing(response["Body"]) as body:
            return bytes(body.read())

    def _open(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        except Exception as exc:
            if error_code(exc) in _ABSENT_CODES:
                raise NotFound(f"{self.name}: no object at key {key!r}", resource=self.name) from exc
            raise self._error(exc, key) from exc

    def _stream_blocking(self, key: str) -> Iterator[bytes]:
        body = self._open(key)

        def chunks() -> Iterator[bytes]:
            with contextlib.closing(body):
                yield from body.iter_chunks(self.limits.chunk_size)

        return chunks()

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        body = await self._call(self._open, key)
        try:
            while True:
                chunk = await bridge.offload(body.read, self.limits.chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except Exception as exc:
            if error_code(exc) in _ABSENT_CODES:
                return None
            raise self._error(exc, key) from exc
        return self._info(key, response)

    def _delete_blocking(self, key: str) -> bool:
        # S3 answers 204 whether or not the object existed; a HEAD first tells which.
        existed = self._head_blocking(key) is not None
        if existed:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
            except Exception as exc:
                raise self._error(exc, key) from exc
        return existed

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix, "MaxKeys": limit}
        if cursor is not None:
            if not isinstance(cursor, str):
                raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
            request["ContinuationToken"] = cursor
        try:
            response = self.client.list_objects_v2(**request)
        except Exception as exc:
            raise self._error(exc) from exc
        cut = len(self.prefix)
        objects = [self._info(entry["Key"][cut:], entry, int(entry["Size"])) for entry in response.get("Contents", ())]
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return ListPage(objects, token)

    async def _url(self, key: str, expires: timedelta, method: str) -> str:
        seconds = int(expires.total_seconds())
        if not 1 <= seconds <= _MAX_PRESIGN:
            raise InvalidArgument(
                f"{self.name}: a presigned URL for {key!r} lasts 1 s to 7 days, got {expires}", resource=self.name
            )
        operation = "get_object" if method == "GET" else "put_object"
        try:
            return str(
                self.client.generate_presigned_url(
                    operation, Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=seconds
                )
            )
        except Exception as exc:
            raise self._error(exc, key) from exc
