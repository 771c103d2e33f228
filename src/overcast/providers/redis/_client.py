"""One redis-py client per URL (its connection pool is thread-safe), and error mapping."""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.retry
from redis import exceptions as redis_errors

from ... import telemetry
from ...errors import InvalidArgument, PermissionDenied, ProviderError, Unavailable
from ...resources.url import ResourceURL

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import Script

_clients: dict[str, redis.Redis] = {}
_async_clients: weakref.WeakKeyDictionary[Any, dict[str, aioredis.Redis]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

_CLIENT_OPTIONS = ("socket_timeout", "socket_connect_timeout", "health_check_interval")


def server_url(location: ResourceURL) -> str:
    """The redis-py URL of ``location``: scheme, host, port and database, no Overcast options."""
    host = location.host or "localhost"
    db = location.path.strip("/") or "0"
    if not db.isdigit():
        raise InvalidArgument(f"{location}: the path must be a database number, got {location.path!r}")
    return f"{location.scheme}://{host}/{db}"


def _identity(location: ResourceURL) -> tuple[str, bool]:
    """The key of ``location``'s shared client, and whether it is a cluster."""
    cluster = location.option_bool("cluster", False)
    if cluster and location.path.strip("/") not in ("", "0"):
        raise InvalidArgument(f"{location}: a Redis Cluster has only database 0")
    key = "#".join(
        [
            server_url(location),
            location.option("password_env") or "",
            location.option("username_env") or "",
            location.username or "",
            location.password or "",
            str(cluster),
            *(
                f"{name}={location.option(name) or ''}"
                for name in (*_CLIENT_OPTIONS, "retry_on_timeout", "retries", "timeout", "max_connections")
            ),
        ]
    )
    return key, cluster


#: Connections one client (the blocking one, or one event loop's) opens at most (the URL
#: option ``max_connections``); a command finding none free waits for one within its deadline.
DEFAULT_MAX_CONNECTIONS = 20


def _bounded(location: ResourceURL, options: dict[str, Any], asynchronous: bool) -> Any:
    """A client over a blocking pool of at most ``max_connections`` connections: redis-py's
    default pool opens one per concurrent command, without bound."""
    most = location.option_int("max_connections", DEFAULT_MAX_CONNECTIONS, minimum=1)
    module: Any = redis
    if asynchronous:
        from redis import asyncio as aio

        module = aio
    pool = module.BlockingConnectionPool.from_url(
        server_url(location), max_connections=most, timeout=deadline(location), **options
    )
    made = module.Redis(connection_pool=pool)
    made.auto_close_connection_pool = True
    return made


#: Seconds a call may take (the URL option ``timeout``): Redis answers in well under a
#: millisecond and a connection (TLS included) takes tens of them, so 2 s is slack for a slow
#: command yet leaves a serverless function most of its time to fail over.
DEFAULT_TIMEOUT = 2.0


def deadline(location: ResourceURL) -> float:
    """The URL option ``timeout``: seconds to connect and to wait for an answer (default 2)."""
    return location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True)


def _options(location: ResourceURL, cluster: bool) -> dict[str, Any]:
    seconds = deadline(location)
    options: dict[str, Any] = {"socket_connect_timeout": seconds, "socket_timeout": seconds}
    # Credentials come from the environment: a URL taken from a variable (``${REDIS_URL}``), or
    # the variables named by ``password_env``/``username_env``.
    password = location.password or os.environ.get(location.option("password_env") or "REDIS_PASSWORD")
    username = location.username or os.environ.get(location.option("username_env") or "REDIS_USERNAME")
    if password:
        options["password"] = password
    if username:
        options["username"] = username
    for name in _CLIENT_OPTIONS:
        # a health check interval of 0 turns the check off; a timeout of 0 would make no sense
        given = location.option_seconds(name, None, positive=name != "health_check_interval")
        if given is not None:
            options[name] = given
    if location.option_bool("retry_on_timeout", False):
        options["retry_on_timeout"] = True
    if cluster:
        options.pop("health_check_interval", None)
    return options


#: Retries of a command whose connection failed (redis-py's own Redis() default backoff;
#: the URL option ``retries`` changes the count, ``retry_on_timeout=true`` adds timeouts).
DEFAULT_RETRIES = 3


class _CountingRetry(redis.retry.Retry):
    """redis-py's retry policy, reporting each retry it makes as ``overcast.retries``."""

    def call_with_retry(self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False) -> Any:
        def counted(error: Exception, failures: int) -> Any:
            outcome = fail(error, failures) if with_failure_count else fail(error)  # raises if no retry follows
            if self._retries < 0 or failures <= self._retries:
                telemetry.retried("redis")
            return outcome

        return super().call_with_retry(do, counted, is_retryable, True)


_async_retry: list[type] = []


def _retry(location: ResourceURL, *, asynchronous: bool) -> Any:
    """The retry policy of a client for ``location`` (sync or asyncio)."""
    from redis.backoff import ExponentialWithJitterBackoff

    retries = location.option_int("retries", DEFAULT_RETRIES, minimum=0)
    # A refused connection is retried at once-ish (10 ms, 20 ms, ...): the backoff stays a
    # small part of the deadline, so the call ends within it however many retries there are.
    backoff = ExponentialWithJitterBackoff(base=0.01, cap=min(1.0, deadline(location) / 8))
    errors = (redis_errors.ConnectionError,)
    if not asynchronous:
        return _CountingRetry(backoff, retries, errors)
    if not _async_retry:
        from redis.asyncio.retry import Retry as AsyncRetry

        class _AsyncCountingRetry(AsyncRetry):
            async def call_with_retry(
                self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False
            ) -> Any:
                async def counted(error: Exception, failures: int) -> Any:
                    outcome = await (fail(error, failures) if with_failure_count else fail(error))
                    if self._retries < 0 or failures <= self._retries:
                        telemetry.retried("redis")
                    return outcome

                return await super().call_with_retry(do, counted, is_retryable, True)

        _async_retry.append(_AsyncCountingRetry)
    return _async_retry[0](backoff, retries, errors)


def client(location: ResourceURL) -> redis.Redis:
    """The shared client for ``location``'s server and database.

    With option ``cluster=true``, a Redis Cluster client (redis-py's ``RedisCluster``) that
    discovers the nodes from the one in the URL and sends each command to the node owning
    its hash slot. It answers the same commands as ``redis.Redis`` for keys of one slot,
    which is all the providers use (every key of a resource carries its hash tag).
    """
    key, cluster = _identity(location)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            options = _options(location, cluster)
            options["retry"] = _retry(location, asynchronous=False)
            if cluster:
                from redis.cluster import RedisCluster

                try:  # it asks a node for the cluster's layout now
                    made = RedisCluster.from_url(server_url(location), **options)
                except REDIS_ERRORS as exc:
                    raise error(exc, str(location), "cluster discovery") from exc
                # Same commands for single-slot keys; typed as the plain client the providers use.
                found = cast(redis.Redis, made)
            else:
                found = _bounded(location, options, asynchronous=False)
            _clients[key] = found
        return found


def async_client(location: ResourceURL) -> aioredis.Redis:
    """The ``redis.asyncio`` client for ``location`` on the running event loop.

    An asyncio client belongs to the loop it first ran on, so each loop has its own
    (dropped with the loop). Async callers then talk to Redis on the loop itself, with no
    worker-thread hop; the blocking faces keep the thread-safe client of :func:`client`.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    per_loop = _async_clients.get(loop)
    if per_loop is None:
        with _lock:
            per_loop = _async_clients.setdefault(loop, {})
    key, cluster = _identity(location)
    found = per_loop.get(key)
    if found is None:
        import redis.asyncio

        options = _options(location, cluster)
        options["retry"] = _retry(location, asynchronous=True)
        if cluster:
            from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

            found = cast(redis.asyncio.Redis, AsyncRedisCluster.from_url(server_url(location), **options))
        else:
            found = _bounded(location, options, asynchronous=True)
        per_loop[key] = found
    return found


class LoopClient:
    """A resource's own memo of :func:`async_client`: the client of the loop it last ran
    on, so the hot path is one identity check instead of a lookup keyed by loop and URL."""

    __slots__ = ("_client", "_location", "_loop")

    def __init__(self, location: ResourceURL) -> None:
        self._location = location
        self._loop: Any = None
        self._client: aioredis.Redis | None = None

    def __call__(self) -> aioredis.Redis:
        from asyncio import get_running_loop

        loop = get_running_loop()
        if loop is self._loop and self._client is not None:
            return self._client
        found = async_client(self._location)
        self._loop, self._client = loop, found
        return found


def namespace(location: ResourceURL, name: str | None, default: str) -> str:
    """The resource's key prefix: option ``prefix``, else its declared name, else ``default``."""
    prefix = location.option("prefix") or name or default
    if "{" in prefix or "}" in prefix:
        raise InvalidArgument(f"{location}: prefix {prefix!r} may not hold braces (they mark the hash tag)")
    return prefix


async def run_script(aclient: aioredis.Redis, script: Script, keys: list[str], args: list[Any]) -> Any:
    """Run a script registered on the blocking client through ``aclient``: EVALSHA, and EVAL
    (which caches it again) if the server no longer knows it (a restart, SCRIPT FLUSH)."""
    try:
        return await aclient.evalsha(script.sha, len(keys), *keys, *args)
    except redis_errors.NoScriptError:
        return await aclient.eval(cast(str, script.script), len(keys), *keys, *args)


#: What a Redis call may raise: redis-py's errors, and its cluster client's own, which are not
#: ``RedisError`` (no reachable node is ``RedisClusterUnreachableError``).
REDIS_ERRORS: tuple[type[Exception], ...] = (redis_errors.RedisError, redis_errors.RedisClusterException)


def error(exc: Exception, resource: str, what: str) -> ProviderError:
    message = f"{resource}: Redis {what}: {exc}"
    if isinstance(exc, redis_errors.RedisClusterUnreachableError):
        return Unavailable(message, resource=resource)
    if isinstance(exc, (redis_errors.AuthenticationError, redis_errors.NoPermissionError)):
        return PermissionDenied(message, resource=resource)  # before ConnectionError, its base
    if isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError)):
        return Unavailable(message, resource=resource)
    if isinstance(exc, redis_errors.ReadOnlyError):
        return Unavailable(message, resource=resource)
    return ProviderError(message, resource=resource)
