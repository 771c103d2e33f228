"""Secrets held in process memory, set by tests: ``memory://NAME``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar

from ...errors import InvalidArgument, NotFound
from ...resources.keys import check_key
from ...resources.secrets import SecretStore
from ...resources.url import ResourceURL
from ._memory import _state

__all__ = ["MemorySecretStore"]


class _SecretState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, str] = {}


_everywhere = _SecretState()


class _SetSecret:
    """``MemorySecretStore.set``: on the class, for every store in the process; on an instance, for its store."""

    def __get__(self, store: MemorySecretStore | None, owner: type[MemorySecretStore]) -> Callable[[str, str], None]:
        if store is None:
            return lambda name, value: _put_secret(_everywhere, name, value, "memory secrets")
        return store._set_here


def _put_secret(state: _SecretState, name: str, value: str, resource: str) -> None:
    check_key(name, max_bytes=512, resource=resource, what="secret name")
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{resource}: the value of secret {name!r} must be a str, not {type(value).__name__}", resource=resource
        )
    with state.lock:
        state.values[name] = value


class MemorySecretStore(SecretStore):
    """Secrets set by code, for tests: ``MemorySecretStore.set(name, value)``.

    Called on the class, ``set`` defines a secret every memory secret store in the
    process can read; called on an instance, it defines it in that store only (and
    in the stores sharing its ``memory://NAME``), where it takes precedence.
    Values are not cached by default (``cache_ttl`` 0), so a new value is read at once.
    """

    offload: ClassVar[bool] = False
    default_cache_ttl: ClassVar[float] = 0.0
    set = _SetSecret()

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._values = _state("secret", self.location.host, _SecretState)

    def _set_here(self, name: str, value: str) -> None:
        _put_secret(self._values, name, value, self.name)
        self.invalidate(name)

    def _fetch_blocking(self, name: str) -> str:
        for state in (self._values, _everywhere):
            with state.lock:
                value = state.values.get(name)
            if value is not None:
                return value
        raise NotFound(f"{self.name}: no secret named {name!r}", resource=self.name)
