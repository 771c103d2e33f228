"""What the Google providers share: the project, emulator credentials and the error table.

Google's clients raise ``google.api_core.exceptions.GoogleAPICallError`` subclasses for
both gRPC (Firestore, Pub/Sub, Secret Manager) and JSON (Cloud Storage) calls; the table
below maps them, most specific first, onto :mod:`overcast.errors`, keeping the original
as ``__cause__``.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProviderError,
    Throttled,
    Unavailable,
    rewrapped,
)
from ...resources.url import ResourceURL

__all__ = ["emulated", "google_error", "project_of"]

_table: list[tuple[type[BaseException], type[ProviderError]]] | None = None


def _error_table() -> list[tuple[type[BaseException], type[ProviderError]]]:
    global _table
    if _table is None:
        from google.api_core import exceptions as g
        from google.auth import exceptions as auth

        _table = [
            (g.NotFound, NotFound),
            (g.AlreadyExists, Conflict),
            (g.PreconditionFailed, Conflict),  # HTTP 412: a generation precondition
            (g.FailedPrecondition, Conflict),  # gRPC 9: an update-time precondition
            (g.Aborted, Conflict),  # a transaction lost a race
            (g.Conflict, Conflict),
            (g.TooManyRequests, Throttled),
            (g.ResourceExhausted, Throttled),
            (g.PermissionDenied, PermissionDenied),
            (g.Forbidden, PermissionDenied),
            (g.Unauthenticated, PermissionDenied),
            (g.Unauthorized, PermissionDenied),
            (auth.DefaultCredentialsError, PermissionDenied),
            (g.InvalidArgument, InvalidArgument),
            (g.BadRequest, InvalidArgument),
            (g.OutOfRange, InvalidArgument),
            (g.RetryError, Unavailable),
            (g.ServiceUnavailable, Unavailable),
            (g.DeadlineExceeded, Unavailable),
            (g.InternalServerError, Unavailable),
            (g.GatewayTimeout, Unavailable),
            (auth.TransportError, Unavailable),
            (ConnectionError, Unavailable),
            (TimeoutError, Unavailable),
        ]
        try:
            import requests

            _table.append((requests.ConnectionError, Unavailable))
            _table.append((requests.Timeout, Unavailable))
        except ImportError:  # pragma: no cover - google-cloud-storage always brings requests
            pass
    return _table


def google_error(exc: BaseException, about: str, *, resource: str) -> ProviderError:
    """The :mod:`overcast.errors` exception for a Google client error (raise it ``from exc``)."""
    if isinstance(exc, ProviderError):  # mapped already: the prefix once, the chain kept
        return rewrapped(exc)
    for google_type, ours in _error_table():
        if isinstance(exc, google_type):
            return ours(f"{about}: {_message(exc)}", resource=resource)
    return ProviderError(f"{about}: {type(exc).__name__}: {exc}", resource=resource)


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return str(message) if message else f"{type(exc).__name__}: {exc}"


def project_of(url: ResourceURL) -> str | None:
    """The project: the URL option ``project``, else ``GOOGLE_CLOUD_PROJECT`` / ``GCLOUD_PROJECT``,
    else None (the client's own discovery from the credentials)."""
    return url.option("project") or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT") or None


def emulated(variable: str) -> bool:
    """Whether ``variable`` (``STORAGE_EMULATOR_HOST``, ...) points the client at an emulator."""
    return bool(os.environ.get(variable))


def anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]
