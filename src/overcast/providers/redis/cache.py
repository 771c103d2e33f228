"""``redis://HOST:PORT/DB`` as a cache: GET/SET with PX, DEL, INCRBY, under ``{NAME}:``."""

from __future__ import annotations

from typing import ClassVar

from redis import exceptions as redis_errors

from ...errors import InvalidArgument
from ...resources.cache import Cache
from ...resources.url import ResourceURL
from ._client import REDIS_ERRORS, LoopClient, client, error, namespace

__all__ = ["RedisCache"]


class RedisCache(Cache):
    """A cache shared by every process that reaches the server.

    Options: ``prefix`` (default: the resource's name), ``default_ttl`` (seconds),
    ``socket_timeout``, ``socket_connect_timeout``. Capabilities: ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"multiprocess"})
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "redis"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._client = client(self.location)
        self._async = LoopClient(self.location)
        self._prefix = "{" + namespace(self.location, name, "cache") + "}:"
        self.default_ttl = self.location.option_seconds(
            "default_ttl", None, positive=True, maximum=self.limits.max_ttl, resource=self.name
        )

    def _ping_blocking(self) -> None:
        try:
            self._client.ping()
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, "PING") from exc

    # -- async callers: redis.asyncio on the running loop (no worker thread) -------------

    async def _get(self, key: str) -> bytes | None:
        try:
            data: bytes | None = await self._async().get(self._prefix + key)  # type: ignore[assignment]
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"GET {key!r}") from exc
        return data

    async def _set(self, key: str, data: bytes, ttl: float | None) -> None:
        try:
            await self._async().set(self._prefix + key, data, px=None if ttl is None else max(1, int(ttl * 1000)))
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"SET {key!r}") from exc

    async def _delete(self, key: str) -> bool:
        try:
            return bool(await self._async().delete(self._prefix + key))
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"DEL {key!r}") from exc

    async def _incr(self, key: str, by: int) -> int:
        try:
            if self.default_ttl is None:
                return int(await self._async().incrby(self._prefix + key, by))
            async with self._async().pipeline(transaction=True) as pipe:
                pipe.incrby(self._prefix + key, by)
                pipe.pexpire(self._prefix + key, max(1, int(self.default_ttl * 1000)), nx=True)
                value, _ = await pipe.execute()
            return int(value)
        except REDIS_ERRORS as exc:
            raise self._incr_error(exc, key) from exc

    # -- blocking callers: the shared thread-safe client ------------------------------

    def _get_blocking(self, key: str) -> bytes | None:
        try:
            data: bytes | None = self._client.get(self._prefix + key)  # type: ignore[assignment]
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"GET {key!r}") from exc
        return data

    def _set_blocking(self, key: str, data: bytes, ttl: float | None) -> None:
        try:
            self._client.set(self._prefix + key, data, px=None if ttl is None else max(1, int(ttl * 1000)))
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"SET {key!r}") from exc

    def _delete_blocking(self, key: str) -> bool:
        try:
            return bool(self._client.delete(self._prefix + key))
        except REDIS_ERRORS as exc:
            raise error(exc, self.name, f"DEL {key!r}") from exc

    def _incr_blocking(self, key: str, by: int) -> int:
        try:
            if self.default_ttl is None:
                return int(self._client.incrby(self._prefix + key, by))
            with self._client.pipeline(transaction=True) as pipe:  # a new counter gets the default TTL
                pipe.incrby(self._prefix + key, by)
                pipe.pexpire(self._prefix + key, max(1, int(self.default_ttl * 1000)), nx=True)
                value, _ = pipe.execute()
            return int(value)
        except REDIS_ERRORS as exc:
            raise self._incr_error(exc, key) from exc

    def _incr_error(self, exc: Exception, key: str) -> Exception:
        if isinstance(exc, redis_errors.ResponseError) and ("not an integer" in str(exc) or "out of range" in str(exc)):
            return InvalidArgument(
                f"{self.name}: cannot increment {key!r}: it does not hold an integer", resource=self.name
            )
        return error(exc, self.name, f"INCRBY {key!r}")

    def close(self) -> None:
        return None  # the client is shared by every resource on the same server
