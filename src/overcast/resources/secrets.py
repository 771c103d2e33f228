"""Secrets: named strings read from a secret store, cached for a while.

``open_secrets(url)`` gives a :class:`SecretStore`; ``app.secret(name)`` gives a
:class:`Secret`, bound to one name. Values are cached for ``cache_ttl`` seconds
(the URL option ``cache_ttl``, 300 by default) so a hot path does not call the
service each time; rotation is picked up when the cache expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar

from . import bridge
from .base import Resource
from .keys import check_key

__all__ = ["Secret", "SecretStore", "SyncSecretStore", "read_listeners"]

#: Called with every value a :class:`Secret` reads. Telemetry adds the function that keeps
#: secret values out of logs and metric attributes (resources never import telemetry).
read_listeners: list[Callable[[str], None]] = []


def _read(value: str) -> str:
    for listener in read_listeners:
        listener(value)
    return value


class SecretStore(Resource):
    """Named secret strings. Providers implement ``_fetch`` or ``_fetch_blocking``."""

    kind: ClassVar[str] = "secret"
    default_cache_ttl: ClassVar[float] = 300.0
    required_hooks: ClassVar[tuple[str, ...]] = ("_fetch",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.cache_ttl = self.location.option_seconds("cache_ttl", self.default_cache_ttl, resource=self.name)
        self._cached: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    async def get(self, name: str) -> str:
        """Return the secret's value; raise NotFound if the store has no such secret."""
        self._check(name)
        hit = self._hit(name)
        if hit is not None:
            return hit
        return self._keep(name, await self._fetch(name))

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached values (one, or all) so the next read goes to the store."""
        with self._lock:
            if name is None:
                self._cached.clear()
            else:
                self._cached.pop(name, None)

    @property
    def sync(self) -> SyncSecretStore:
        return SyncSecretStore(self)

    def _check(self, name: str) -> None:
        check_key(name, max_bytes=512, resource=self.name, what="secret name")

    def _hit(self, name: str) -> str | None:
        entry = self._cached.get(name)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    def _keep(self, name: str, value: str) -> str:
        if self.cache_ttl > 0:
            with self._lock:
                self._cached[name] = (time.monotonic() + self.cache_ttl, value)
        return value

    async def _fetch(self, name: str) -> str:
        return await self._call(self._fetch_blocking, name)

    def _fetch_blocking(self, name: str) -> str:
        return bridge.run_sync(self._fetch(name))


class SyncSecretStore:
    """Blocking face of a :class:`SecretStore`."""

    __slots__ = ("store",)

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def get(self, name: str) -> str:
        s = self.store
        s._check(name)
        hit = s._hit(name)
        if hit is not None:
            return hit
        return s._keep(name, s._fetch_blocking(name))


class Secret:
    """One named secret in a store: what ``app.secret(name)`` returns."""

    def __init__(self, store: SecretStore, name: str) -> None:
        self.store = store
        self.name = name

    async def get(self) -> str:
        return _read(await self.store.get(self.name))

    @property
    def sync(self) -> _SyncSecret:
        return _SyncSecret(self)


class _SyncSecret:
    __slots__ = ("secret",)

    def __init__(self, secret: Secret) -> None:
        self.secret = secret

    def get(self) -> str:
        return _read(self.secret.store.sync.get(self.secret.name))
