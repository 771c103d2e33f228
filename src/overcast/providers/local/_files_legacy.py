"""Reading a files store written before the plain-folder layout, to convert it.

That layout kept each object in ``<escaped key>.o`` at the folder's top: the object's bytes,
then its key, size, ETag, content type and metadata as JSON, the JSON's length (8 bytes,
big-endian) and the magic word ``OVCBLOB1``. :func:`legacy_objects` reads such files for
``FileBlobStore.create`` to rewrite as plain files; nothing writes them any more.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["holds_legacy_objects", "legacy_objects"]

_SUFFIX = ".o"
_MAGIC = b"OVCBLOB1"
_LENGTH = struct.Struct(">Q")
_TAIL_SIZE = _LENGTH.size + len(_MAGIC)


def _trailer(path: str) -> tuple[dict[str, Any], int] | None:
    """The JSON trailer of an old object file and the size of its bytes, or None if it is not one."""
    try:
        with open(path, "rb") as fh:
            total = fh.seek(0, os.SEEK_END)
            if total < _TAIL_SIZE:
                return None
            fh.seek(total - _TAIL_SIZE)
            tail = fh.read(_TAIL_SIZE)
            if tail[_LENGTH.size :] != _MAGIC:
                return None
            (length,) = _LENGTH.unpack(tail[: _LENGTH.size])
            if length > total - _TAIL_SIZE:
                return None
            fh.seek(total - _TAIL_SIZE - length)
            trailer = json.loads(fh.read(length))
    except (OSError, ValueError):
        return None
    size = total - _TAIL_SIZE - length
    if not isinstance(trailer, dict) or trailer.get("size") != size or not isinstance(trailer.get("key"), str):
        return None
    return trailer, size


def _candidates(root: Path) -> Iterator[str]:
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(_SUFFIX) and entry.is_file(follow_symlinks=False):
            yield entry.path


def holds_legacy_objects(root: Path) -> bool:
    """Whether ``root``'s top holds an object file of the old layout."""
    return any(_trailer(path) is not None for path in _candidates(root))


def legacy_objects(root: Path) -> Iterator[tuple[str, bytes, str, dict[str, str], Path]]:
    """Each old object in ``root``: (key, bytes, content type, metadata, its file)."""
    for path in _candidates(root):
        found = _trailer(path)
        if found is None:
            continue
        trailer, size = found
        with open(path, "rb") as fh:
            data = fh.read(size)
        yield trailer["key"], data, str(trailer["content_type"]), dict(trailer["metadata"]), Path(path)
