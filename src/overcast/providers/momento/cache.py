"""``momento://CACHE`` as a cache: the Momento SDK's Get, Set, Delete and Increment.

Credentials come from the environment, never the URL: a v2 API key in ``MOMENTO_API_KEY``
with its endpoint in ``MOMENTO_ENDPOINT`` (``momento.cell-….momentohq.com``), or a legacy
API key (which carries its endpoints) in ``MOMENTO_API_KEY`` alone. Option ``local=HOST:PORT``
talks plain-text gRPC to Momento Local (or a test fake) instead, without a key.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from momento import CacheClient, Configurations, CredentialProvider
from momento.config import Configuration
from momento.errors import MomentoErrorCode
from momento.errors.exceptions import SdkException
from momento.responses import CacheDelete, CacheGet, CacheIncrement, CacheSet, CreateCache
from momento.responses.mixins import ErrorResponseMixin
from momento.retry import RetryableProps, RetryStrategy

from ... import telemetry
from ...errors import (
    ConfigError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProviderError,
    Throttled,
    Unavailable,
)
from ...resources.cache import Cache, CacheLimits
from ...resources.url import ResourceURL

__all__ = ["MomentoCache"]

_clients: dict[tuple[Any, ...], CacheClient] = {}
_lock = threading.Lock()

_CONFIGURATIONS: dict[str, Callable[[], Configuration]] = {
    "laptop": lambda: Configurations.Laptop.latest(),
    "lambda": lambda: Configurations.Lambda.latest(),
    "in_region": lambda: Configurations.InRegion.Default.latest(),
    "low_latency": lambda: Configurations.InRegion.LowLatency.latest(),
}

#: Momento's default limit on a cache's TTL (raised per account on request).
MAX_TTL = 24 * 3600.0


def _credentials(location: ResourceURL) -> tuple[CredentialProvider, tuple[str, ...]]:
    local = location.option("local")
    if local is not None:
        host, _, port = local.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{location}: option local must be HOST:PORT, got {local!r}")
        return CredentialProvider.for_momento_local(host, int(port)), ("local", host, port)
    key_variable = location.option("api_key_env") or "MOMENTO_API_KEY"
    api_key = os.environ.get(key_variable)
    if not api_key:
        raise ConfigError(
            f"{location}: no Momento API key: set {key_variable} (and MOMENTO_ENDPOINT for a v2 key), "
            "or use ?local=HOST:PORT for Momento Local"
        )
    endpoint = location.option("endpoint") or os.environ.get(location.option("endpoint_env") or "MOMENTO_ENDPOINT")
    try:
        if endpoint:
            return CredentialProvider.from_api_key_v2(api_key, endpoint), ("v2", key_variable, endpoint)
        with warnings.catch_warnings():  # legacy keys carry their endpoints; the SDK deprecates the reader
            warnings.simplefilter("ignore", DeprecationWarning)
            return CredentialProvider.from_string(api_key), ("v1", key_variable)
    except SdkException as exc:
        raise ConfigError(f"{location}: the Momento API key in {key_variable} is not usable: {exc}") from None


class _CountingRetries(RetryStrategy):
    """The configuration's own retry strategy, reporting each retry it decides on as
    ``overcast.retries`` (when telemetry is on)."""

    def __init__(self, inner: RetryStrategy) -> None:
        self.inner = inner

    def determine_when_to_retry(self, props: RetryableProps) -> float | None:
        delay = self.inner.determine_when_to_retry(props)
        deadline = props.overall_deadline
        if delay is not None and deadline is not None and datetime.now() + timedelta(seconds=delay) >= deadline:
            return None  # the call's deadline (the option timeout) would pass before the retry
        if delay is not None:
            telemetry.retried("momento")
        return delay

    def calculate_retry_deadline(self, overall_deadline: datetime) -> float | None:
        return self.inner.calculate_retry_deadline(overall_deadline)


#: Seconds a call may take, retries included (the URL option ``timeout``): Momento answers in
#: a few milliseconds in-region; 5 s is slack for a cold TLS channel from another region.
DEFAULT_TIMEOUT = 5.0


def _client(location: ResourceURL) -> CacheClient:
    """One client per credentials and configuration in this process (its channels are thread-safe)."""
    credentials, identity = _credentials(location)
    name = location.option_choice("configuration", sorted(_CONFIGURATIONS), "laptop")
    timeout = location.option_seconds("timeout", None, positive=True)
    key = (*identity, name, timeout)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            configuration: Configuration = _CONFIGURATIONS[name]()
            preset = configuration.get_transport_strategy().get_grpc_configuration().get_deadline()
            # the option, else the preset's own if shorter than DEFAULT_TIMEOUT (laptop's is 15 s)
            seconds = timeout or min(preset.total_seconds(), DEFAULT_TIMEOUT)
            configuration = configuration.with_client_timeout(timedelta(seconds=seconds))
            configuration = configuration.with_retry_strategy(_CountingRetries(configuration.get_retry_strategy()))
            # No eager connection: opening a resource never blocks; the first call connects.
            found = _clients[key] = CacheClient(configuration, credentials, timedelta(seconds=MAX_TTL))
        return found


def _error(response: ErrorResponseMixin, resource: str, what: str) -> ProviderError:
    code = response.error_code
    message = f"{resource}: Momento {what}: {response.message}"
    if code is MomentoErrorCode.NOT_FOUND_ERROR:
        return NotFound(message + " (create the cache with `await cache.create()`)", resource=resource)
    if code in (MomentoErrorCode.AUTHENTICATION_ERROR, MomentoErrorCode.PERMISSION_ERROR):
        return PermissionDenied(message, resource=resource)
    if code is MomentoErrorCode.LIMIT_EXCEEDED_ERROR:
        return Throttled(message, resource=resource)
    if code in (
        MomentoErrorCode.TIMEOUT_ERROR,
        MomentoErrorCode.SERVER_UNAVAILABLE,
        MomentoErrorCode.CONNECTION_ERROR,
        MomentoErrorCode.CANCELLED_ERROR,
        MomentoErrorCode.INTERNAL_SERVER_ERROR,
    ):
        return Unavailable(message, resource=resource)
    if code in (MomentoErrorCode.INVALID_ARGUMENT_ERROR, MomentoErrorCode.BAD_REQUEST_ERROR):
        return InvalidArgument(message, resource=resource)
    return ProviderError(message, resource=resource)


class MomentoCache(Cache):
    """A Momento cache, shared by every process holding credentials for it.

    Options: ``local`` (``HOST:PORT`` of Momento Local), ``api_key_env`` (default
    ``MOMENTO_API_KEY``), ``endpoint`` or ``endpoint_env`` (default ``MOMENTO_ENDPOINT``),
    ``configuration`` (``laptop``, the default; ``lambda``, ``in_region``, ``low_latency``:
    the SDK's presets), ``timeout`` (seconds per call, retries included: 5, or the preset's own if
    shorter), ``default_ttl`` (seconds; a value set
    without a TTL otherwise lives 24 hours, Momento's default ceiling), ``prefix`` (put before
    every key, to share one cache between resources). Capabilities: ``multiprocess``.

    ``delete`` reads before it deletes (Momento's Delete does not say whether the key was
    there), so two concurrent deletes of one key may both answer True.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"multiprocess"})
    limits: ClassVar[CacheLimits] = CacheLimits(max_ttl=MAX_TTL)
    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "momento"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._cache = self.location.host
        if not self._cache:
            raise ConfigError(f"{self.location}: name the cache: momento://CACHE")
        self._client = _client(self.location)
        self._prefix = self.location.option("prefix") or ""
        ttl = self.location.option_seconds(
            "default_ttl", None, positive=True, maximum=self.limits.max_ttl, resource=self.name
        )
        if ttl is not None:  # at most Momento's limit on a TTL
            self.default_ttl = ttl
        self._fallback_ttl = timedelta(seconds=self.default_ttl or self.limits.max_ttl)

    def _create_blocking(self) -> None:
        response = self._client.create_cache(self._cache)
        if isinstance(response, CreateCache.Error):
            raise _error(response, self.name, f"CreateCache {self._cache!r}")

    def _ping_blocking(self) -> None:
        self._get_blocking("__overcast_ping__")

    def _get_blocking(self, key: str) -> bytes | None:
        response = self._client.get(self._cache, self._prefix + key)
        if isinstance(response, CacheGet.Hit):
            return response.value_bytes
        if isinstance(response, CacheGet.Miss):
            return None
        assert isinstance(response, CacheGet.Error)
        raise _error(response, self.name, f"Get {key!r}")

    def _set_blocking(self, key: str, data: bytes, ttl: float | None) -> None:
        expiry = self._fallback_ttl if ttl is None else timedelta(seconds=max(ttl, 0.001))
        response = self._client.set(self._cache, self._prefix + key, data, expiry)
        if isinstance(response, CacheSet.Error):
            raise _error(response, self.name, f"Set {key!r}")

    def _delete_blocking(self, key: str) -> bool:
        existed = self._get_blocking(key) is not None
        response = self._client.delete(self._cache, self._prefix + key)
        if isinstance(response, CacheDelete.Error):
            raise _error(response, self.name, f"Delete {key!r}")
        return existed

    def _incr_blocking(self, key: str, by: int) -> int:
        response = self._client.increment(self._cache, self._prefix + key, by, self._fallback_ttl)
        if isinstance(response, CacheIncrement.Success):
            return int(response.value)
        assert isinstance(response, CacheIncrement.Error)
        if response.error_code is MomentoErrorCode.FAILED_PRECONDITION_ERROR:
            raise InvalidArgument(
                f"{self.name}: cannot increment {key!r}: it does not hold an integer ({response.message})",
                resource=self.name,
            )
        raise _error(response, self.name, f"Increment {key!r}")

    def close(self) -> None:
        return None  # the client is shared by every resource with the same credentials
