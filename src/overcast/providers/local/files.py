"""Objects as files in a folder: ``file:///data/avatars`` (relative) or ``file:////srv/avatars``.

Layout of the root folder:

* ``<name>.o``: one file per object. It holds the object's bytes followed by a
  trailer (its key, size, ETag, content type, metadata and write time as JSON, the
  JSON's length and a magic word), so bytes and metadata are replaced together by
  one ``os.replace`` and a reader that opened the file sees one write, never a mix.
  ``<name>`` is the key's UTF-8 bytes with ``[a-z0-9._-]`` kept and every other
  byte written ``~hh``: no name can climb out of the root (``../x`` is the file
  ``..~2fx.o``), a key may be a prefix of another (``a`` and ``a/b``), and names
  stay distinct on case-insensitive file systems. Names too long for the file
  system keep a readable head and end in a hash of the key.
* ``.overcast/tmp/``: files being written. A write goes to a temporary file, is
  flushed to disk (``fsync``) and renamed over the object, so a crash leaves the
  old object or the new one, never part of one.
* ``.overcast/locks/``: lock files (``fcntl.flock``) that serialize the writes of
  one object across threads and processes, so ``if_absent`` and ``if_etag`` are
  checked and applied atomically. Reads take no lock.

ETags are the MD5 of the content, as S3 gives for single-part uploads. Because each
object file carries a trailer it is not the object's bytes as they are, so this store
does not hand out ``file://`` URLs: :meth:`url` raises ``NotSupported``. POSIX only
(it needs ``fcntl``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import struct
import time
import zlib
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

from ...errors import Conflict, InvalidArgument, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.blob import BlobStore, ListPage, ObjectInfo
from ...resources.url import ResourceURL

__all__ = ["FileBlobStore"]

_SUFFIX = ".o"
_SYSTEM = ".overcast"
_MAGIC = b"OVCBLOB1"
_TAIL = struct.Struct(">Q")
_TAIL_SIZE = _TAIL.size + len(_MAGIC)
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")
_HEX = "0123456789abcdef"
_MAX_NAME = 200
_HEAD = 120
_LONG = "~~"
_LOCK_STRIPES = 64
_STALE_TEMP_SECONDS = 24 * 3600


def _encode_name(key: str) -> str:
    """The file name (without suffix) for ``key``; reversible unless too long (then hashed)."""
    raw = key.encode("utf-8")
    name = "".join(chr(b) if b in _SAFE else "~" + _HEX[b >> 4] + _HEX[b & 15] for b in raw)
    if len(name) <= _MAX_NAME:
        return name
    return name[:_HEAD] + _LONG + hashlib.sha256(raw).hexdigest()


def _encode_prefix(prefix: str) -> str:
    raw = prefix.encode("utf-8")
    return "".join(chr(b) if b in _SAFE else "~" + _HEX[b >> 4] + _HEX[b & 15] for b in raw)


def _decode_name(name: str) -> str | None:
    """The key of a file name, or None when the name is hashed (the key is in the trailer)."""
    if _LONG in name:
        return None
    out = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "~":
            out.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(name[i]))
            i += 1
    return out.decode("utf-8")


def _may_match(name: str, encoded_prefix: str) -> bool:
    if _LONG not in name:
        return name.startswith(encoded_prefix)
    head = name[: name.index(_LONG)]
    n = min(len(head), len(encoded_prefix))
    return head[:n] == encoded_prefix[:n]


def _read_trailer(fh: IO[bytes]) -> dict[str, Any]:
    fh.seek(0, os.SEEK_END)
    total = fh.tell()
    if total < _TAIL_SIZE:
        raise ValueError("file too short for an object trailer")
    fh.seek(total - _TAIL_SIZE)
    tail = fh.read(_TAIL_SIZE)
    if tail[_TAIL.size :] != _MAGIC:
        raise ValueError("no object trailer")
    (length,) = _TAIL.unpack(tail[: _TAIL.size])
    if length > total - _TAIL_SIZE:
        raise ValueError("object trailer length is out of range")
    fh.seek(total - _TAIL_SIZE - length)
    trailer: dict[str, Any] = json.loads(fh.read(length))
    if trailer.get("size") != total - _TAIL_SIZE - length:
        raise ValueError("object trailer size does not match the file")
    return trailer


def _info(trailer: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        trailer["key"],
        trailer["size"],
        trailer["etag"],
        trailer["content_type"],
        dict(trailer["metadata"]),
        datetime.fromtimestamp(trailer["modified"], UTC),
    )


class _Upload:
    """A temporary file being written; :meth:`FileBlobStore._commit` renames it over the object."""

    def __init__(self, store: FileBlobStore) -> None:
        tmp = store.root / _SYSTEM / "tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            self.path = tmp / f"{secrets.token_hex(12)}.tmp"
            self.fh: IO[bytes] = open(self.path, "xb")  # noqa: SIM115 - closed by finish/abort
        except OSError as exc:
            raise store._os_error(exc, None) from exc
        self.store = store
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        try:
            self.fh.write(chunk)
        except OSError as exc:
            self.abort()
            raise self.store._os_error(exc, None) from exc
        self.md5.update(chunk)
        self.size += len(chunk)

    def finish(self, key: str, content_type: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Append the trailer and flush everything to disk; return the trailer."""
        trailer = {
            "key": key,
            "size": self.size,
            "etag": self.md5.hexdigest(),
            "content_type": content_type,
            "metadata": metadata,
            "modified": time.time(),
        }
        data = json.dumps(trailer, ensure_ascii=True, separators=(",", ":")).encode()
        try:
            self.fh.write(data + _TAIL.pack(len(data)) + _MAGIC)
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
        except OSError as exc:
            self.abort()
            raise self.store._os_error(exc, key) from exc
        return trailer

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class FileBlobStore(BlobStore):
    """Objects as files under a root folder, safe for several threads and processes.

    Capabilities: ``conditional``, ``multiprocess``. It cannot sign URLs. The root
    is created on the first write (or by :meth:`create`).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"conditional", "multiprocess"})
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self.root: Path = self.location.local_path()

    # -- paths, locks, errors ------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / (_encode_name(key) + _SUFFIX)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        import fcntl

        locks = self.root / _SYSTEM / "locks"
        stripe = zlib.crc32(key.encode("utf-8")) % _LOCK_STRIPES
        try:
            locks.mkdir(parents=True, exist_ok=True)
            fd = os.open(locks / f"{stripe:02d}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _missing(self, key: str) -> NotFound:
        return NotFound(f"{self.name}: no object at key {key!r}", resource=self.name)

    def _os_error(self, exc: OSError, key: str | None) -> ProviderError:
        about = f"{self.name}: folder {self.root}" + (f", key {key!r}" if key is not None else "")
        message = f"{about}: {exc.strerror or exc}"
        if isinstance(exc, PermissionError):
            return PermissionDenied(message, resource=self.name)
        if exc.errno in (errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.EDQUOT):
            return Unavailable(message, resource=self.name)
        return ProviderError(message, resource=self.name)

    def _corrupt(self, path: Path, key: str, exc: Exception) -> ProviderError:
        return ProviderError(f"{self.name}: {path} for key {key!r} is not an object file: {exc}", resource=self.name)

    def _current(self, key: str) -> dict[str, Any] | None:
        """The trailer of the stored object, or None if there is none."""
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                trailer = _read_trailer(fh)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        except ValueError as exc:
            raise self._corrupt(path, key, exc) from exc
        return trailer if trailer.get("key") == key else None

    def _check_condition(self, key: str, if_absent: bool, if_etag: str | None) -> None:
        if not if_absent and if_etag is None:
            return
        current = self._current(key)
        if if_absent and current is not None:
            raise Conflict(f"{self.name}: an object exists at key {key!r}", resource=self.name)
        if if_etag is not None and (current is None or current["etag"] != if_etag):
            found = "no object" if current is None else f"ETag {current['etag']}"
            raise Conflict(f"{self.name}: key {key!r} has {found}, not ETag {if_etag}", resource=self.name)

    def _commit(
        self,
        upload: _Upload,
        key: str,
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        trailer = upload.finish(key, content_type, metadata)
        try:
            with self._locked(key):
                self._check_condition(key, if_absent, if_etag)
                os.replace(upload.path, self._path(key))
        except BaseException:
            upload.abort()
            raise
        self._sync_root(key)
        return _info(trailer)

    def _sync_root(self, key: str) -> None:
        """Make the rename itself durable."""
        try:
            fd = os.open(self.root, os.O_RDONLY)
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems refuse fsync on a folder; the rename is still atomic
        finally:
            os.close(fd)

    # -- life cycle ----------------------------------------------------------------------

    def _create_blocking(self) -> None:
        try:
            (self.root / _SYSTEM / "tmp").mkdir(parents=True, exist_ok=True)
            (self.root / _SYSTEM / "locks").mkdir(parents=True, exist_ok=True)
            stale = time.time() - _STALE_TEMP_SECONDS
            for entry in os.scandir(self.root / _SYSTEM / "tmp"):
                if entry.stat().st_mtime < stale:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        except OSError as exc:
            raise self._os_error(exc, None) from exc

    def _ping_blocking(self) -> None:
        if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            if not self.root.exists():
                raise NotFound(f"{self.name}: folder {self.root} does not exist", resource=self.name)
            raise PermissionDenied(f"{self.name}: folder {self.root} is not readable and writable", resource=self.name)

    # -- writes --------------------------------------------------------------------------

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        self._check_condition(key, if_absent, if_etag)
        upload = _Upload(self)
        upload.write(data)
        return self._commit(upload, key, content_type, metadata, if_absent, if_etag)

    def _put_stream_blocking(
        self,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        self._check_condition(key, if_absent, if_etag)
        upload = _Upload(self)
        try:
            for chunk in chunks:
                upload.write(self._chunk(key, chunk))
        except BaseException:
            upload.abort()
            raise
        return self._commit(upload, key, content_type, metadata, if_absent, if_etag)

    async def _put_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        await self._call(self._check_condition, key, if_absent, if_etag)
        upload = await self._call(_Upload, self)
        try:
            async for chunk in chunks:
                await self._call(upload.write, self._chunk(key, chunk))
        except BaseException:
            upload.abort()
            raise
        return await self._call(self._commit, upload, key, content_type, metadata, if_absent, if_etag)

    def _chunk(self, key: str, chunk: object) -> bytes:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise InvalidArgument(
                f"{self.name}: stream for key {key!r} yielded {type(chunk).__name__}, not bytes", resource=self.name
            )
        return bytes(chunk)

    def _delete_blocking(self, key: str) -> bool:
        path = self._path(key)
        with self._locked(key):
            if self._current(key) is None:
                return False
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            except OSError as exc:
                raise self._os_error(exc, key) from exc
        return True

    # -- reads ---------------------------------------------------------------------------

    def _open(self, key: str) -> tuple[IO[bytes], dict[str, Any]]:
        """Open the object and read its trailer; the open file stays one version even if replaced."""
        path = self._path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except FileNotFoundError:
            raise self._missing(key) from None
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        try:
            trailer = _read_trailer(fh)
        except OSError as exc:
            fh.close()
            raise self._os_error(exc, key) from exc
        except ValueError as exc:
            fh.close()
            raise self._corrupt(path, key, exc) from exc
        if trailer.get("key") != key:
            fh.close()
            raise self._missing(key)
        return fh, trailer

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        fh, trailer = self._open(key)
        with fh:
            size: int = trailer["size"]
            first = min(start or 0, size)
            last = size if end is None else min(end, size)
            try:
                fh.seek(first)
                return fh.read(max(0, last - first))
            except OSError as exc:
                raise self._os_error(exc, key) from exc

    def _stream_blocking(self, key: str) -> Generator[bytes, None, None]:
        fh, trailer = self._open(key)
        return self._chunks(fh, trailer["size"], key)

    def _chunks(self, fh: IO[bytes], size: int, key: str) -> Generator[bytes, None, None]:
        with fh:
            fh.seek(0)
            remaining = size
            while remaining > 0:
                try:
                    chunk = fh.read(min(self.limits.chunk_size, remaining))
                except OSError as exc:
                    raise self._os_error(exc, key) from exc
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    async def _stream(self, key: str) -> AsyncIterator[bytes]:
        chunks = await self._call(self._stream_blocking, key)
        done = object()
        try:
            while True:
                chunk = await self._call(next, chunks, done)
                if chunk is done:
                    return
                assert isinstance(chunk, bytes)
                yield chunk
        finally:
            chunks.close()

    def _head_blocking(self, key: str) -> ObjectInfo | None:
        trailer = self._current(key)
        return None if trailer is None else _info(trailer)

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
        encoded = _encode_prefix(prefix)
        found: list[tuple[str, str]] = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return ListPage([], None)
        except OSError as exc:
            raise self._os_error(exc, None) from exc
        for entry in entries:
            name = entry.name
            if not name.endswith(_SUFFIX) or not entry.is_file():
                continue
            stem = name[: -len(_SUFFIX)]
            if not _may_match(stem, encoded):
                continue
            try:
                key = _decode_name(stem) if _LONG not in stem else self._key_of(entry.path)
            except ValueError:
                continue  # not a name this store writes
            if key is None or not key.startswith(prefix) or (cursor is not None and key <= cursor):
                continue
            found.append((key, entry.path))
        found.sort()
        objects: list[ObjectInfo] = []
        more = False
        for key, path in found:
            if len(objects) == limit:
                more = True
                break
            info = self._info_at(path, key)
            if info is not None:
                objects.append(info)
        return ListPage(objects, objects[-1].key if more and objects else None)

    def _key_of(self, path: str) -> str | None:
        try:
            with open(path, "rb") as fh:
                key = _read_trailer(fh).get("key")
        except (OSError, ValueError):
            return None
        return key if isinstance(key, str) else None

    def _info_at(self, path: str, key: str) -> ObjectInfo | None:
        """The object's info, or None if it vanished or is not an object file."""
        try:
            with open(path, "rb") as fh:
                trailer = _read_trailer(fh)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        except ValueError:
            return None
        return _info(trailer) if trailer.get("key") == key else None
