"""Credentials, shared SDK clients and error mapping for the Azure storage providers.

Credentials never sit in URLs. A storage client is built from, in order:

1. the connection string in the environment variable named by the URL option
   ``connection_env`` (default ``AZURE_STORAGE_CONNECTION_STRING``, as Azure's own
   tools read it; Azurite's is one);
2. the account named by the option ``account`` (or ``AZURE_STORAGE_ACCOUNT``), reached at
   ``https://ACCOUNT.<service>.core.windows.net`` (or the option ``endpoint``) with
   ``DefaultAzureCredential`` (managed identity, workload identity, environment, CLI).

One client per (service, credentials) is shared by every resource of a process: the SDK
clients are thread-safe and hold the connection pool. The async faces use the SDKs' ``.aio``
clients instead (:func:`async_service_client`): one per (service, credentials) *and event
loop*, since their aiohttp session belongs to the loop it was made on, with the ``.aio``
``DefaultAzureCredential`` when there is no connection string. They are made on first
use on a loop and closed when that loop shuts down (``asyncio.run`` and ``asyncio.Runner``
close them through ``loop.shutdown_asyncgens()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from azure.core import exceptions as az

from ... import telemetry
from ...errors import (
    ConfigError,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProviderError,
    Throttled,
    Unavailable,
)
from ...resources.url import ResourceURL

__all__ = ["LoopClient", "async_service_client", "attempt_hook", "default_credential", "error", "service_client"]

CONNECTION_ENV = "AZURE_STORAGE_CONNECTION_STRING"

_clients: dict[tuple[str, str, str, str, str], Any] = {}
_lock = threading.Lock()
_credential_lock = threading.Lock()
_credential: Any = None


def default_credential() -> Any:
    """The process's ``DefaultAzureCredential`` (created once: it caches tokens)."""
    global _credential
    if _credential is None:
        with _credential_lock:
            if _credential is None:
                from azure.identity import DefaultAzureCredential

                _credential = DefaultAzureCredential()
    return _credential


def _connection_string(location: ResourceURL) -> str | None:
    variable = location.option("connection_env") or CONNECTION_ENV
    value = os.environ.get(variable)
    if location.option("connection_env") and not value:
        raise ConfigError(f"{location}: environment variable {variable} (option connection_env) is not set")
    return value or None


def _target(location: ResourceURL, service: str) -> tuple[str | None, str]:
    """(connection string or None, account URL) of ``location``'s ``service``."""
    conn = _connection_string(location)
    account = location.option("account") or os.environ.get("AZURE_STORAGE_ACCOUNT") or ""
    endpoint = location.option("endpoint") or ""
    if conn is None and not account and not endpoint:
        raise ConfigError(
            f"{location}: no Azure storage credentials; set {CONNECTION_ENV}, or give the option "
            "account=NAME (or AZURE_STORAGE_ACCOUNT) to use DefaultAzureCredential"
        )
    if conn is not None and not endpoint:
        return conn, ""
    return None, endpoint or f"https://{account}.{service}.core.windows.net"


_UPSTREAMS = {"table": "azure_tables", "blob": "azure_blob", "queue": "azure_queue"}


def attempt_hook(upstream: str) -> Any:
    """An azure-core ``raw_request_hook`` that counts the SDK's retries: the hook policy sits
    after the retry policy, which sends the same request again, so it runs on every attempt
    and a second attempt of one request is a retry (``overcast.retries``)."""

    def attempt(request: Any) -> None:
        context = request.context
        attempts = context.get("overcast_attempts", 0) + 1
        context["overcast_attempts"] = attempts
        if attempts > 1:
            telemetry.retried(upstream)  # free while telemetry is off

    return attempt


#: Seconds a call may take (the URL option ``timeout``): Table, Blob and Queue storage answer
#: in tens of milliseconds, so 5 s leaves room for a cold TLS connection and quick retries
#: (the SDKs' own defaults wait up to 300 s per read and back off 15 s, 45 s, ... between tries).
DEFAULT_TIMEOUT = 5.0
#: Retries of throttled and 5xx answers (the SDKs retry up to 10 times; the option ``retries``).
DEFAULT_RETRIES = 3


def deadline(location: ResourceURL) -> float:
    """The URL option ``timeout``: seconds one call may take, retries included (default 5)."""
    return location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True)


def _client_options(location: ResourceURL, service: str, *, asynchronous: bool = False) -> dict[str, Any]:
    """What every client of ``location`` is built with: the attempt hook that reports the
    SDK's retries to telemetry, ``retry_total`` from the option ``retries``, and the deadline
    ``timeout``: a refused connection is not retried (the server is not there); dropped
    connections, read timeouts, throttled and 5xx answers are, after short backoffs
    (storage's defaults start at 15 s), within the deadline (Tables: azure-core bounds the
    whole call; Blob and Queues: each read waits half of it, and is retried once)."""
    attempt = attempt_hook(_UPSTREAMS[service])
    seconds = deadline(location)
    options: dict[str, Any] = {
        "raw_request_hook": attempt,
        "connection_timeout": seconds,
        "retry_total": DEFAULT_RETRIES,
        "retry_connect": 0,
    }
    if service == "table":  # azure-core's RetryPolicy: its backoff, and a bound on the whole call
        options.update(read_timeout=seconds, retry_backoff_factor=0.1, retry_backoff_max=seconds / 4, timeout=seconds)
    else:  # the storage policy bounds no total: each read waits half, so one retry still fits
        options.update(read_timeout=seconds / 2, retry_read=1)
    raw = location.option("retries")
    if raw is not None:
        if not raw.isdigit():
            raise ConfigError(f"{location}: option retries must be a whole number, got {raw!r}")
        options["retry_total"] = int(raw)
    if service != "table":  # the storage SDKs' own policy, linear: 0.2 s (+/- 0.1) between tries
        # the queue package exports no async LinearRetry: both live in each package's _shared
        package = importlib.import_module(f"azure.storage.{service}._shared.policies{'_async' if asynchronous else ''}")
        counts = {name: options.pop(name) for name in ("retry_total", "retry_connect", "retry_read")}
        options["retry_policy"] = package.LinearRetry(backoff=0.2, random_jitter_range=0.1, **counts)
    return options


def service_client(location: ResourceURL, service: str, factory: Any) -> Any:
    """The shared ``*ServiceClient`` of ``service`` (``blob``, ``queue``, ``table``) for ``location``.

    ``factory`` is the SDK class; it must have ``from_connection_string`` and take
    ``(account_url, credential=...)``.
    """
    conn, url = _target(location, service)
    key = (service, conn or "", url, location.option("retries") or "", location.option("timeout") or "")
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            options = _client_options(location, service)
            try:
                found = (
                    factory.from_connection_string(conn, **options)
                    if conn is not None
                    else factory(url, credential=default_credential(), **options)
                )
            except ValueError as exc:  # the SDK's word on the URL (a token over plain HTTP, ...)
                raise ConfigError(f"{location}: {exc}") from exc
            _clients[key] = found
        return found


# -- the .aio clients: one set per event loop ----------------------------------------------

#: the ``.aio`` service class of each service, imported on first async use (it imports aiohttp)
AIO_FACTORIES = {
    "table": ("azure.data.tables.aio", "TableServiceClient"),
    "blob": ("azure.storage.blob.aio", "BlobServiceClient"),
    "queue": ("azure.storage.queue.aio", "QueueServiceClient"),
}


class _LoopClients:
    """The ``.aio`` clients and credential made on one event loop."""

    __slots__ = ("clients", "credential", "finalizer")

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str, str, str, str], Any] = {}
        self.credential: Any = None
        self.finalizer: AsyncIterator[None] | None = None

    async def close(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        credential, self.credential = self.credential, None
        for closeable in [*clients, *([credential] if credential is not None else [])]:
            with contextlib.suppress(Exception):  # the loop is shutting down: nobody to tell
                await closeable.close()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


async def _finalizer(loop: asyncio.AbstractEventLoop, state: _LoopClients) -> AsyncIterator[None]:
    """Suspended for the loop's life; ``loop.shutdown_asyncgens()`` resumes it to close the clients."""
    try:
        yield
    finally:
        _loops.pop(loop, None)
        state.finalizer = None
        await state.close()


async def async_service_client(location: ResourceURL, service: str) -> Any:
    """The ``.aio`` ``*ServiceClient`` of ``service`` for ``location`` on the running event loop."""
    conn, url = _target(location, service)
    loop = asyncio.get_running_loop()
    state = _loops.get(loop)
    if state is None:
        state = _loops[loop] = _LoopClients()
        finalizer = _finalizer(loop, state)
        await anext(finalizer)  # registers it with the loop, which closes it on shutdown
        state.finalizer = finalizer  # held here: the loop keeps only a weak reference
    key = (service, conn or "", url, location.option("retries") or "", location.option("timeout") or "")
    found = state.clients.get(key)
    if found is None:
        module, name = AIO_FACTORIES[service]
        factory = getattr(importlib.import_module(module), name)
        options = _client_options(location, service, asynchronous=True)
        if conn is not None:
            found = factory.from_connection_string(conn, **options)
        else:
            if state.credential is None:
                from azure.identity.aio import DefaultAzureCredential

                state.credential = DefaultAzureCredential()
            found = factory(url, credential=state.credential, **options)
        state.clients[key] = found
    return found


class LoopClient:
    """A resource's memo of an ``.aio`` client derived from :func:`async_service_client`
    (a table, container or queue client): the one of the loop it last ran on, so the hot
    path is one identity check; a call on another loop derives that loop's."""

    __slots__ = ("_bound", "_derive", "_location", "_service")

    def __init__(self, location: ResourceURL, service: str, derive: Any) -> None:
        self._location = location
        self._service = service
        self._derive = derive
        self._bound: tuple[Any, Any] = (None, None)  # (loop, client): one attribute, so threads see a pair

    async def __call__(self) -> Any:
        loop = asyncio.get_running_loop()
        bound = self._bound
        if bound[0] is loop:
            return bound[1]
        value = self._derive(await async_service_client(self._location, self._service))
        self._bound = (loop, value)
        return value


def error(exc: Exception, resource: str, what: str) -> ProviderError:
    """Map an azure-core error onto Overcast's errors (the caller raises it ``from exc``)."""
    message = f"{resource}: Azure {what}: {_short(exc)}"
    status = getattr(exc, "status_code", None)
    if isinstance(exc, az.ResourceNotFoundError):
        return NotFound(message, resource=resource)
    if isinstance(exc, (az.ResourceExistsError, az.ResourceModifiedError, az.ResourceNotModifiedError)):
        return Conflict(message, resource=resource)
    if isinstance(exc, az.ClientAuthenticationError) or status == 403:
        return PermissionDenied(message, resource=resource)
    if (status in (429, 503) and "busy" in str(exc).lower()) or status == 429:
        return Throttled(message, resource=resource)
    if isinstance(exc, (az.ServiceRequestError, az.ServiceResponseError)) or (status is not None and status >= 500):
        return Unavailable(message, resource=resource)
    if status in (400, 413):
        return InvalidArgument(message, resource=resource)
    return ProviderError(message, resource=resource)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
