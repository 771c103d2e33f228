"""One redis-py client per URL (its connection pool is thread-safe), and error mapping."""

from __future__ import annotations

import os
import threading
from typing import Any, cast

import redis
from redis import exceptions as redis_errors

from ...errors import InvalidArgument, PermissionDenied, ProviderError, Unavailable
from ...resources.url import ResourceURL

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CLIENT_OPTIONS = ("socket_timeout", "socket_connect_timeout", "health_check_interval")


def server_url(location: ResourceURL) -> str:
    """The redis-py URL of ``location``: scheme, host, port and database, no Overcast options."""
    host = location.host or "localhost"
    db = location.path.strip("/") or "0"
    if not db.isdigit():
        raise InvalidArgument(f"{location}: the path must be a database number, got {location.path!r}")
    return f"{location.scheme}://{host}/{db}"


def client(location: ResourceURL) -> redis.Redis:
    """The shared client for ``location``'s server and database.

    With option ``cluster=true``, a Redis Cluster client (redis-py's ``RedisCluster``) that
    discovers the nodes from the one in the URL and sends each command to the node owning
    its hash slot. It answers the same commands as ``redis.Redis`` for keys of one slot,
    which is all the providers use (every key of a resource carries its hash tag).
    """
    cluster = (location.option("cluster") or "false").lower()
    if cluster not in _BOOLEANS:
        raise InvalidArgument(f"{location}: option cluster must be true or false, got {cluster!r}")
    url = (
        server_url(location)
        + "#"
        + (location.option("password_env") or "")
        + "#"
        + (location.option("username_env") or "")
        + "#"
        + cluster
    )
    found = _clients.get(url)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(url)
        if found is None:
            options: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_timeout": 10.0}
            # Credentials never sit in URLs: they come from the environment.
            password = os.environ.get(location.option("password_env") or "REDIS_PASSWORD")
            username = os.environ.get(location.option("username_env") or "REDIS_USERNAME")
            if password:
                options["password"] = password
            if username:
                options["username"] = username
            for name in _CLIENT_OPTIONS:
                raw = location.option(name)
                if raw is not None:
                    options[name] = float(raw)
            if _BOOLEANS[cluster]:
                if location.path.strip("/") not in ("", "0"):
                    raise InvalidArgument(f"{location}: a Redis Cluster has only database 0")
                from redis.cluster import RedisCluster

                options.pop("health_check_interval", None)
                # Same commands for single-slot keys; typed as the plain client the providers use.
                found = cast(redis.Redis, RedisCluster.from_url(server_url(location), **options))
            else:
                found = redis.Redis.from_url(server_url(location), **options)
            _clients[url] = found
        return found


def namespace(location: ResourceURL, name: str | None, default: str) -> str:
    """The resource's key prefix: option ``prefix``, else its declared name, else ``default``."""
    prefix = location.option("prefix") or name or default
    if "{" in prefix or "}" in prefix:
        raise InvalidArgument(f"{location}: prefix {prefix!r} may not hold braces (they mark the hash tag)")
    return prefix


def error(exc: redis_errors.RedisError, resource: str, what: str) -> ProviderError:
    message = f"{resource}: Redis {what}: {exc}"
    if isinstance(exc, (redis_errors.AuthenticationError, redis_errors.NoPermissionError)):
        return PermissionDenied(message, resource=resource)  # before ConnectionError, its base
    if isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError)):
        return Unavailable(message, resource=resource)
    if isinstance(exc, redis_errors.ReadOnlyError):
        return Unavailable(message, resource=resource)
    return ProviderError(message, resource=resource)
