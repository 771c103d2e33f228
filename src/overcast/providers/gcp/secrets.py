"""Secrets in Secret Manager: ``gsm://PREFIX?project=P&version=latest``.

``get(name)`` reads the secret ``PREFIX-name`` (or ``name`` when the URL has no prefix,
``gsm://?project=P``) at version ``version`` (``latest`` by default) and caches the value
for ``cache_ttl`` seconds (300 by default), so a rotation is seen within that time.
Secret ids are letters, digits, ``-`` and ``_``, at most 255 characters; names that break
that are refused before any call.

``put(name, value)`` creates the secret (automatic replication) if it is absent and adds
a version; it is for tests and provisioning, not for the app's hot path.

No emulator of Secret Manager exists. ``emulator=HOST:PORT`` (URL option) or the
``SECRET_MANAGER_EMULATOR_HOST`` variable points the real client at a server speaking the
Secret Manager gRPC API over plain text without credentials, like the other emulators;
Overcast's tests use a fake one (``tests/providers/gcp/fake_secret_manager.py``). This
provider has not yet run against the real service.

Deadline: the option ``timeout`` (default 5 s, as the other Google providers) bounds a read,
retries included: each attempt's own timeout and the retry policy's total (the client's
defaults retry ``UNAVAILABLE`` for 60 s); a refused connection is not retried.

URL options: ``project``, ``version``, ``cache_ttl``, ``emulator``, ``timeout``.

IAM: ``roles/secretmanager.secretAccessor`` on each secret (``roles/secretmanager.admin``
for ``put``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Any, ClassVar

from ...errors import ConfigError, InvalidArgument, ProviderError
from ...resources.secrets import SecretStore
from ...resources.url import ResourceURL
from ._client import anonymous, google_error, project_of
from ._retries import count_gapic_retries, deadline

__all__ = ["SecretManagerSecretStore"]

_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION = re.compile(r"^(latest|[1-9][0-9]*)$")

_lock = threading.Lock()
_clients: dict[tuple[int, str | None, float], Any] = {}


def _client(emulator: str | None, seconds: float) -> Any:
    """The client (per process, endpoint and deadline) whose calls end within ``seconds``, retries included."""
    key = (os.getpid(), emulator, seconds)
    with _lock:
        found = _clients.get(key)
        if found is None:
            from google.cloud import secretmanager

            if emulator:
                import grpc
                from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
                    SecretManagerServiceGrpcTransport,
                )

                transport = SecretManagerServiceGrpcTransport(
                    channel=grpc.insecure_channel(emulator), credentials=anonymous()
                )
                found = secretmanager.SecretManagerServiceClient(transport=transport)
            else:
                found = secretmanager.SecretManagerServiceClient()
            _clients[key] = count_gapic_retries(found, "secretmanager", seconds)
        return found


class SecretManagerSecretStore(SecretStore):
    """Secrets in Google Secret Manager, under an optional id prefix; see the module docstring."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        project = project_of(self.location)
        if project is None:
            raise ConfigError(f"{self.name}: no Google Cloud project (URL option project or GOOGLE_CLOUD_PROJECT)")
        self.project = project
        self.prefix = self.location.host
        if self.prefix and not _SECRET_ID.match(self.prefix):
            raise ConfigError(f"{self.name}: secret id prefix {self.prefix!r} must be letters, digits, - and _")
        self.version = self.location.option("version", "latest") or "latest"
        if not _VERSION.match(self.version):
            raise ConfigError(f"{self.name}: version must be 'latest' or a version number, got {self.version!r}")
        self.emulator = self.location.option("emulator") or os.environ.get("SECRET_MANAGER_EMULATOR_HOST") or None
        self.timeout = deadline(self.location)

    @property
    def client(self) -> Any:
        """The ``SecretManagerServiceClient`` (shared per process and endpoint)."""
        return _client(self.emulator, self.timeout)

    def secret_id(self, name: str) -> str:
        """The Secret Manager id of secret ``name``; raise InvalidArgument if it cannot be one."""
        secret_id = f"{self.prefix}-{name}" if self.prefix else name
        if not _SECRET_ID.match(secret_id):
            raise InvalidArgument(
                f"{self.name}: secret name {name!r} gives the Secret Manager id {secret_id!r}, which must be "
                "1-255 letters, digits, '-' or '_'",
                resource=self.name,
            )
        return secret_id

    def _check(self, name: str) -> None:
        super()._check(name)
        self.secret_id(name)

    def _error(self, exc: BaseException, name: str) -> ProviderError:
        return google_error(
            exc, f"{self.name}: secret {name!r} ({self.secret_id(name)}) in project {self.project}", resource=self.name
        )

    def _fetch_blocking(self, name: str) -> str:
        path = f"projects/{self.project}/secrets/{self.secret_id(name)}/versions/{self.version}"
        try:
            response = self.client.access_secret_version(name=path)
        except Exception as exc:
            raise self._error(exc, name) from exc
        data = bytes(response.payload.data)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(f"{self.name}: secret {name!r} is not UTF-8 text", resource=self.name) from None

    def put(self, name: str, value: str) -> None:
        """Store ``value`` as a new version of secret ``name``, creating the secret if needed."""
        from google.api_core.exceptions import AlreadyExists

        self._check(name)
        secret_id = self.secret_id(name)
        try:
            with contextlib.suppress(AlreadyExists):
                self.client.create_secret(
                    parent=f"projects/{self.project}",
                    secret_id=secret_id,
                    secret={"replication": {"automatic": {}}},
                )
            self.client.add_secret_version(
                parent=f"projects/{self.project}/secrets/{secret_id}", payload={"data": value.encode()}
            )
        except ProviderError:
            raise
        except Exception as exc:
            raise self._error(exc, name) from exc
        self.invalidate(name)

    def _ping_blocking(self) -> None:
        try:
            self.client.list_secrets(request={"parent": f"projects/{self.project}", "page_size": 1})
        except Exception as exc:
            about = f"{self.name}: Secret Manager in project {self.project}"
            raise google_error(exc, about, resource=self.name) from exc
