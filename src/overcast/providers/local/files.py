"""Objects as files in an ordinary folder: ``file://data/avatars`` (relative) or ``file:///srv/avatars``.

The folder is what a person and a tool expect (as in fsspec's and obstore's local stores):

* the object at key ``photos/2024/cat.jpg`` is the file ``photos/2024/cat.jpg``, holding
  its bytes as they are (``cat`` prints them, ``cp`` copies them); a file put there by
  another program is an object too, with the content type its name suggests;
* its metadata (content type, user metadata, ETag) is a JSON sidecar beside the tree, in
  ``.overcast/meta/photos/2024/cat.jpg.json``;
* a key that cannot be a relative path (an empty, ``.`` or ``..`` segment, a leading or
  trailing ``/``, a NUL byte, a segment over 250 bytes, a first segment ``.overcast``),
  or that clashes with the tree (``a`` while ``a/b`` exists, or ``a/b`` while ``a`` is a
  file), is stored under ``.overcast/keys/`` with its name escaped: UTF-8 bytes, with
  ``[a-z0-9._-]`` kept and every other byte written ``~hh`` (so names stay distinct on a
  case-insensitive file system), long names ending in a hash of the key.

Writes are atomic and conditional writes exact, across threads and processes:

* a write goes to ``.overcast/tmp/``, is flushed to disk (``fsync``) and renamed over the
  object, so a crash leaves the old bytes or the new ones;
* the sidecar is replaced first, and names each version it describes by the file's
  identity (inode, size, modification time): it describes the new file and the one it
  replaces, so a reader that opened either version finds its metadata, and a crash
  between the two renames leaves the old object whole;
* writes of one key are serialized by lock files in ``.overcast/locks/`` (``fcntl.flock``),
  so ``if_absent`` and ``if_etag`` are checked and applied atomically, however many
  processes race: one wins, the others get ``Conflict``. A write waits for the lock up to
  the URL option ``timeout`` (default 30 s), then is ``Unavailable``. Reads take no lock;
* a folder left empty by a delete is removed, and a write that finds the folder it just
  made gone (another key's delete removed it) makes it again.

ETags are the MD5 of the content, as S3 gives for single-part uploads (computed on first
read for a file another program wrote). A folder written by Overcast before this layout
(``<escaped key>.o`` files ending in a metadata trailer) is converted by :meth:`create`
(``overcast provision``); any other call on it raises an error saying so. URL option:
``timeout``, how long a write waits for another writer of its key (default 30 s). :meth:`url`
raises ``NotSupported``. POSIX only (it needs ``fcntl``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

from ...errors import Conflict, InvalidArgument, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.blob import BlobStore, ListPage, ObjectInfo
from ...resources.url import ResourceURL
from . import _files_legacy

__all__ = ["FileBlobStore"]

_SYSTEM = ".overcast"
_KEYS = f"{_SYSTEM}/keys"
_META = "meta"
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")
_HEX = "0123456789abcdef"
_MAX_NAME = 200
_HEAD = 120
_MAX_SEGMENT = 250  # bytes: the sidecar adds ".json" within the usual 255
_LOCK_STRIPES = 64
_STALE_TEMP_SECONDS = 24 * 3600
_READ_TRIES = 5
_FOLDER_TRIES = 20  # a folder removed under a write by other keys' deletes: made again
#: Seconds a write waits for another writer of its key (the URL option ``timeout``).
DEFAULT_TIMEOUT = 30.0
_LOCK_POLL_FIRST = 0.001
_LOCK_POLL_MOST = 0.05


def escaped_name(key: str) -> str:
    """The file name under ``.overcast/keys/`` for ``key``: reversible unless too long (then hashed)."""
    raw = key.encode("utf-8")
    name = "".join(chr(b) if b in _SAFE else "~" + _HEX[b >> 4] + _HEX[b & 15] for b in raw)
    if name in ("", ".", ".."):
        return "~" + name.replace(".", "~2e")  # never the folder itself or its parent
    if len(name) <= _MAX_NAME:
        return name
    return name[:_HEAD] + "~~" + hashlib.sha256(raw).hexdigest()


def tree_path(key: str) -> str | None:
    """``key`` as a relative path in the tree, or None when it cannot be one."""
    segments = key.split("/")
    if "\x00" in key or segments[0] == _SYSTEM:
        return None
    for segment in segments:
        if segment in ("", ".", "..") or len(segment.encode("utf-8")) > _MAX_SEGMENT:
            return None
    return key


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _make_folder(folder: Path) -> None:
    """``mkdir -p``, again when another process removes a folder on the way meanwhile (a
    delete removes the folders it leaves empty); a file in the way still raises."""
    for _ in range(_FOLDER_TRIES):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except (FileExistsError, FileNotFoundError):
            if folder.is_dir():
                return
    folder.mkdir(parents=True, exist_ok=True)


def _guess_type(key: str) -> str:
    import mimetypes

    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


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
        """Flush the bytes to disk; return the sidecar entry describing them."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            stat = os.fstat(self.fh.fileno())
            self.fh.close()
        except OSError as exc:
            self.abort()
            raise self.store._os_error(exc, key) from exc
        return {
            "file": _identity(stat),
            "etag": self.md5.hexdigest(),
            "content_type": content_type,
            "metadata": metadata,
            "modified": time.time(),
        }

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
        self.timeout = self.location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True, resource=self.name)
        self._layout_checked = False

    # -- where a key lives ---------------------------------------------------------------

    def _places(self, key: str) -> list[str]:
        """The relative paths ``key`` may be stored at, in the order they are looked up."""
        escaped = f"{_KEYS}/{escaped_name(key)}"
        tree = tree_path(key)
        return [escaped] if tree is None else [tree, escaped]

    def _sidecar(self, place: str) -> Path:
        return self.root / _SYSTEM / _META / (place + ".json")

    # -- paths, locks, errors ------------------------------------------------------------

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
            self._wait_for_lock(fd, key, fcntl)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _wait_for_lock(self, fd: int, key: str, fcntl: Any) -> None:
        """Take the lock on ``fd``, polling with backoff for up to :attr:`timeout`."""
        deadline = time.monotonic() + self.timeout
        delay = _LOCK_POLL_FIRST
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                raise self._os_error(exc, key) from exc
            if time.monotonic() + delay > deadline:
                raise Unavailable(
                    f"{self.name}: folder {self.root}, key {key!r}: another writer held its lock for the "
                    f"deadline of {self.timeout:g} s (the URL option timeout)",
                    resource=self.name,
                )
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(2 * delay, _LOCK_POLL_MOST)

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

    def _check_layout(self) -> None:
        """Refuse, once per store, a folder in the layout before this one (until :meth:`create` converts it)."""
        if self._layout_checked:
            return
        if _files_legacy.holds_legacy_objects(self.root):
            raise ProviderError(
                f"{self.name}: folder {self.root} holds objects in Overcast's old layout (files ending "
                "in .o with a metadata trailer); convert it once with `overcast provision` or "
                "`await bucket.create()`, which rewrites them as plain files",
                resource=self.name,
            )
        self._layout_checked = True

    # -- reading one object --------------------------------------------------------------

    def _entry(self, place: str, stat: os.stat_result) -> dict[str, Any] | None:
        """The sidecar's entry for the file version ``stat`` describes, if it has one."""
        try:
            data = json.loads(self._sidecar(place).read_bytes())
        except (OSError, ValueError):
            return None
        wanted = _identity(stat)
        for entry in data.get("versions", []) if isinstance(data, dict) else []:
            if isinstance(entry, dict) and entry.get("file") == wanted:
                return entry
        return None

    def _derived(self, key: str, fh: IO[bytes], stat: os.stat_result) -> dict[str, Any]:
        """The entry of a file no sidecar describes (another program wrote it): its MD5, a guessed type."""
        md5 = hashlib.md5(usedforsecurity=False)
        fh.seek(0)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            md5.update(chunk)
        return {"file": _identity(stat), "etag": md5.hexdigest(), "content_type": _guess_type(key), "metadata": {}}

    def _open(self, key: str) -> tuple[IO[bytes], str, dict[str, Any]] | None:
        """The object's open file, where it is and its entry; None if there is none."""
        self._check_layout()
        for place in self._places(key):
            for attempt in range(_READ_TRIES):
                try:
                    fh = open(self.root / place, "rb")  # noqa: SIM115 - returned to the caller, who closes it
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    break
                except OSError as exc:
                    if exc.errno == errno.ENAMETOOLONG:
                        break
                    raise self._os_error(exc, key) from exc
                try:
                    stat = os.fstat(fh.fileno())
                    entry = self._entry(place, stat)
                    if entry is not None:
                        return fh, place, entry
                    if attempt + 1 == _READ_TRIES or not self._sidecar(place).exists():
                        return fh, place, self._derived(key, fh, stat)
                except OSError as exc:
                    fh.close()
                    raise self._os_error(exc, key) from exc
                fh.close()  # replaced twice since it was opened: open the file now there
        return None

    def _current(self, key: str) -> tuple[str, dict[str, Any]] | None:
        found = self._open(key)
        if found is None:
            return None
        fh, place, entry = found
        fh.close()
        return place, entry

    def _info(self, key: str, entry: dict[str, Any]) -> ObjectInfo:
        modified = entry.get("modified")
        if modified is None:
            modified = entry["file"][2] / 1e9
        return ObjectInfo(
            key,
            entry["file"][1],
            entry["etag"],
            entry["content_type"],
            dict(entry["metadata"]),
            datetime.fromtimestamp(modified, UTC),
        )

    # -- writes --------------------------------------------------------------------------

    def _check_condition(self, key: str, current: dict[str, Any] | None, if_absent: bool, if_etag: str | None) -> None:
        if if_absent and current is not None:
            raise Conflict(f"{self.name}: an object exists at key {key!r}", resource=self.name)
        if if_etag is not None and (current is None or current["etag"] != if_etag):
            found = "no object" if current is None else f"ETag {current['etag']}"
            raise Conflict(f"{self.name}: key {key!r} has {found}, not ETag {if_etag}", resource=self.name)

    def _precheck(self, key: str, if_absent: bool, if_etag: str | None) -> None:
        """Refuse a conditional write early, before its bytes are uploaded (checked again under the lock)."""
        if if_absent or if_etag is not None:
            current = self._current(key)
            self._check_condition(key, None if current is None else current[1], if_absent, if_etag)

    def _commit(
        self,
        upload: _Upload,
        key: str,
        content_type: str,
        metadata: dict[str, str],
        if_absent: bool,
        if_etag: str | None,
    ) -> ObjectInfo:
        entry = upload.finish(key, content_type, metadata)
        try:
            with self._locked(key):
                current = self._current(key)
                self._check_condition(key, None if current is None else current[1], if_absent, if_etag)
                place = self._install(key, upload.path, entry, current)
                if current is not None and current[0] != place:
                    self._remove(key, current[0])  # the key moved between the tree and .overcast/keys
        except BaseException:
            upload.abort()
            raise
        return self._info(key, entry)

    def _install(
        self, key: str, source: Path, entry: dict[str, Any], current: tuple[str, dict[str, Any]] | None
    ) -> str:
        """Put the sidecar, then the file, at the first place that can hold ``key``; return it."""
        places = self._places(key)
        for place in places:
            previous = [current[1]] if current is not None and current[0] == place else []
            if self._install_at(key, place, source, [entry, *previous], last=place == places[-1]):
                return place
        raise AssertionError("the escaped place always takes the key")

    def _install_at(self, key: str, place: str, source: Path, versions: list[dict[str, Any]], last: bool) -> bool:
        """Put the sidecar, then the file, at ``place``; False if the tree cannot hold it there."""
        target = self.root / place
        for _ in range(_FOLDER_TRIES):
            try:
                _make_folder(target.parent)
                if target.is_dir():
                    return False  # ``a`` while ``a/b`` exists: the escaped place
            except (FileExistsError, NotADirectoryError):
                return False  # ``a/b`` while ``a`` is a file
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG and not last:
                    return False
                raise self._os_error(exc, key) from exc
            self._write_sidecar(key, place, versions)
            try:
                os.replace(source, target)
            except FileNotFoundError:
                continue  # a delete of another key removed the folder, now empty: make it again
            except (IsADirectoryError, NotADirectoryError) as exc:
                if last:
                    raise self._os_error(exc, key) from exc
                return False  # the tree changed under us; the escaped place cannot
            except OSError as exc:
                raise self._os_error(exc, key) from exc
            self._sync_folder(target.parent)
            return True
        message = f"{self.name}: folder {self.root}, key {key!r}: its folder was removed {_FOLDER_TRIES} times"
        raise ProviderError(message, resource=self.name)

    def _write_sidecar(self, key: str, place: str, versions: list[dict[str, Any]]) -> None:
        path = self._sidecar(place)
        data = json.dumps({"key": key, "versions": versions}, ensure_ascii=False, separators=(",", ":")).encode()
        tmp = self.root / _SYSTEM / "tmp" / f"{secrets.token_hex(12)}.json"
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            for attempt in range(_FOLDER_TRIES):
                _make_folder(path.parent)
                try:
                    os.replace(tmp, path)
                    break
                except FileNotFoundError:
                    if attempt + 1 == _FOLDER_TRIES:
                        raise  # a delete of another key removed the folder, now empty: make it again
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise self._os_error(exc, key) from exc

    def _remove(self, key: str, place: str) -> None:
        """Delete the file at ``place``, then its sidecar, then the folders left empty."""
        try:
            (self.root / place).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._os_error(exc, key) from exc
        with contextlib.suppress(FileNotFoundError):
            self._sidecar(place).unlink()
        for top, path in ((self.root, self.root / place), (self.root / _SYSTEM / _META, self._sidecar(place))):
            folder = path.parent
            while folder != top and top in folder.parents and folder.name != _SYSTEM:
                try:
                    folder.rmdir()  # only when empty; a concurrent write may fill it again
                except OSError:
                    break
                folder = folder.parent

    def _sync_folder(self, folder: Path) -> None:
        """Make the rename itself durable."""
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems refuse fsync on a folder; the rename is still atomic
        finally:
            os.close(fd)

    def _put_blocking(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], if_absent: bool, if_etag: str | None
    ) -> ObjectInfo:
        self._precheck(key, if_absent, if_etag)
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
        self._precheck(key, if_absent, if_etag)
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
        await self._call(self._precheck, key, if_absent, if_etag)
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
        with self._locked(key):
            current = self._current(key)
            if current is None:
                return False
            self._remove(key, current[0])
        return True

    # -- life cycle ----------------------------------------------------------------------

    def _create_blocking(self) -> None:
        try:
            for folder in ("tmp", "locks", _META):
                (self.root / _SYSTEM / folder).mkdir(parents=True, exist_ok=True)
            stale = time.time() - _STALE_TEMP_SECONDS
            for entry in os.scandir(self.root / _SYSTEM / "tmp"):
                if entry.stat().st_mtime < stale:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        except OSError as exc:
            raise self._os_error(exc, None) from exc
        for key, data, content_type, metadata, legacy in _files_legacy.legacy_objects(self.root):
            self._layout_checked = True  # converting: the old files are read here, not refused
            upload = _Upload(self)
            upload.write(data)
            with contextlib.suppress(Conflict):  # a newer write of the key wins
                self._commit(upload, key, content_type, metadata, True, None)
            legacy.unlink()
        self._layout_checked = False

    def _ping_blocking(self) -> None:
        if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            if not self.root.exists():
                raise NotFound(f"{self.name}: folder {self.root} does not exist", resource=self.name)
            raise PermissionDenied(f"{self.name}: folder {self.root} is not readable and writable", resource=self.name)
        self._check_layout()

    # -- reads ---------------------------------------------------------------------------

    def _get_blocking(self, key: str, start: int | None, end: int | None) -> bytes:
        found = self._open(key)
        if found is None:
            raise self._missing(key)
        fh, _, entry = found
        with fh:
            size: int = entry["file"][1]
            first = min(start or 0, size)
            last = size if end is None else min(end, size)
            try:
                fh.seek(first)
                return fh.read(max(0, last - first))
            except OSError as exc:
                raise self._os_error(exc, key) from exc

    def _stream_blocking(self, key: str) -> Generator[bytes, None, None]:
        found = self._open(key)
        if found is None:
            raise self._missing(key)
        fh, _, entry = found
        return self._chunks(fh, entry["file"][1], key)

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
        current = self._current(key)
        return None if current is None else self._info(key, current[1])

    def _list_page_blocking(self, prefix: str, limit: int, cursor: str | None) -> ListPage:
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument(f"{self.name}: cursor must be a str from a previous page", resource=self.name)
        self._check_layout()
        keys = sorted(k for k in self._keys(prefix) if k.startswith(prefix) and (cursor is None or k > cursor))
        objects: list[ObjectInfo] = []
        for key in keys:
            if len(objects) == limit:
                return ListPage(objects, objects[-1].key)
            current = self._current(key)  # None if it vanished meanwhile
            if current is not None:
                objects.append(self._info(key, current[1]))
        return ListPage(objects, None)

    def _keys(self, prefix: str) -> Iterator[str]:
        """Every key whose file may match ``prefix``: the tree below its folder, and the escaped keys."""
        folder = prefix.rpartition("/")[0]
        start = self.root / folder if folder and tree_path(folder) is not None else self.root
        for top, dirs, files in os.walk(start, onerror=self._walk_error):
            relative = os.path.relpath(top, self.root)
            if relative == ".":
                dirs[:] = [d for d in dirs if d != _SYSTEM]
                relative = ""
            for file in files:
                yield f"{relative}/{file}" if relative else file
        yield from self._escaped_keys()

    def _walk_error(self, exc: OSError) -> None:
        if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            raise self._os_error(exc, None) from exc

    def _escaped_keys(self) -> Iterator[str]:
        meta = self.root / _SYSTEM / _META / _KEYS
        try:
            entries = list(os.scandir(self.root / _KEYS))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._os_error(exc, None) from exc
        for entry in entries:
            try:
                key = json.loads((meta / (entry.name + ".json")).read_bytes())["key"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # no sidecar: not a file this store wrote
            if isinstance(key, str) and f"{_KEYS}/{escaped_name(key)}" == f"{_KEYS}/{entry.name}":
                yield key
