"""What the in-process providers (``memory://``) share: per-name state, versions, options."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import InvalidArgument

S = TypeVar("S")

_shared: dict[tuple[str, str], Any] = {}
_shared_lock = threading.Lock()
_versions = itertools.count(1)
_POLL_FIRST = 0.005
_POLL_MAX = 0.05


def _state(kind: str, host: str, factory: Callable[[], S]) -> S:
    """The data behind ``memory://host`` for ``kind``: shared by name, private without one."""
    if not host:
        return factory()
    with _shared_lock:
        found: S | None = _shared.get((kind, host))
        if found is None:
            found = _shared[(kind, host)] = factory()
        return found


def _new_version() -> str:
    return f"{next(_versions):012x}"


def _after_cursor(keys: list[str], prefix: str, cursor: str | None, resource: str) -> int:
    start = bisect.bisect_left(keys, prefix)
    if cursor is not None:
        if not isinstance(cursor, str):
            raise InvalidArgument(f"{resource}: cursor must be a str from a previous page", resource=resource)
        start = max(start, bisect.bisect_right(keys, cursor))
    return start


def _drop_key(keys: list[str], key: str) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


# -- key-value -------------------------------------------------------------------------
