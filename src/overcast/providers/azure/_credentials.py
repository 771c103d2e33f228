"""Credentials, shared SDK clients and error mapping for the Azure storage providers.

Credentials never sit in URLs. A storage client is built from, in order:

1. the connection string in the environment variable named by the URL option
   ``connection_env`` (default ``AZURE_STORAGE_CONNECTION_STRING``, as Azure's own
   tools read it; Azurite's is one);
2. the account named by the option ``account`` (or ``AZURE_STORAGE_ACCOUNT``), reached at
   ``https://ACCOUNT.<service>.core.windows.net`` (or the option ``endpoint``) with
   ``DefaultAzureCredential`` (managed identity, workload identity, environment, CLI).

One client per (service, credentials) is shared by every resource of a process: the SDK
clients are thread-safe and hold the connection pool.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from azure.core import exceptions as az

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

__all__ = ["default_credential", "error", "service_client"]

CONNECTION_ENV = "AZURE_STORAGE_CONNECTION_STRING"

_clients: dict[tuple[str, str, str], Any] = {}
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


def service_client(location: ResourceURL, service: str, factory: Any) -> Any:
    """The shared ``*ServiceClient`` of ``service`` (``blob``, ``queue``, ``table``) for ``location``.

    ``factory`` is the SDK class; it must have ``from_connection_string`` and take
    ``(account_url, credential=...)``.
    """
    conn = _connection_string(location)
    account = location.option("account") or os.environ.get("AZURE_STORAGE_ACCOUNT") or ""
    endpoint = location.option("endpoint") or ""
    if conn is None and not account and not endpoint:
        raise ConfigError(
            f"{location}: no Azure storage credentials; set {CONNECTION_ENV}, or give the option "
            "account=NAME (or AZURE_STORAGE_ACCOUNT) to use DefaultAzureCredential"
        )
    key = (service, conn or "", endpoint or account)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            if conn is not None and not endpoint:
                found = factory.from_connection_string(conn)
            else:
                url = endpoint or f"https://{account}.{service}.core.windows.net"
                found = factory(url, credential=default_credential())
            _clients[key] = found
        return found


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
