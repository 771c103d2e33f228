"""``keyvault://VAULT`` and ``keyvault://VAULT/SECRET``: secrets in Azure Key Vault.

``keyvault://VAULT`` reads the secret named as asked; ``keyvault://VAULT/SECRET`` binds
the resource to that one Key Vault secret whatever name the app uses (so
``secret.mail-api-key = "keyvault://prod-vault/mail-key"`` works). Key Vault names
are ASCII letters, digits and ``-`` (at most 127): an ``_`` in a name becomes ``--``
(the convention of Azure's configuration providers) and any other character is refused
before a call is made.

The vault is ``https://VAULT.vault.azure.net`` unless the option ``endpoint`` gives
another (sovereign clouds, private endpoints, a test server); ``verify_challenge=false``
stops the SDK from checking that the vault's authentication challenge names a Key
Vault domain (needed only for such endpoints). Credentials come from
``DefaultAzureCredential``; the role **Key Vault Secrets User** on the vault is enough.
Values are cached for ``cache_ttl`` seconds (default 300) by the base class.

Deadline: the option ``timeout`` (default 5 s, as the other Azure providers) bounds a call to
the vault, retries included: azure-core's ``connection_timeout`` and ``read_timeout``, and
its retry policy's total ``timeout`` with backoffs from 0.1 s; a refused connection is not
retried. (The SDK waits up to 300 s per read and backs off 0.8 s, 1.6 s, ... up to 10 times.)
The credential's own token request is the credential's, outside this bound.
"""

from __future__ import annotations

import re
import threading
from typing import Any, ClassVar

from azure.core import exceptions as az

from ...errors import InvalidArgument, NotFound
from ...resources.secrets import SecretStore
from ...resources.url import ResourceURL
from ._credentials import DEFAULT_RETRIES, attempt_hook, deadline, default_credential, error

__all__ = ["KeyVaultSecretStore", "vault_secret_name"]

_VALID = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_FALSE = frozenset({"0", "false", "no", "off"})
_clients: dict[tuple[str, bool, float], Any] = {}
_lock = threading.Lock()
_attempt = attempt_hook("keyvault")


def vault_secret_name(name: str, *, resource: str) -> str:
    """The Key Vault name of secret ``name``: ``_`` written ``--``; other characters are refused."""
    mapped = name.replace("_", "--")
    if not _VALID.match(mapped):
        raise InvalidArgument(
            f"{resource}: secret name {name!r} cannot be a Key Vault secret name (1-127 ASCII letters, "
            "digits and '-'; '_' is written '--')",
            resource=resource,
        )
    return mapped


def _client(vault_url: str, verify: bool, seconds: float) -> Any:
    """The ``SecretClient`` of a vault whose calls end within ``seconds``, retries included."""
    key = (vault_url, verify, seconds)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                from azure.keyvault.secrets import SecretClient

                found = _clients[key] = SecretClient(
                    vault_url,
                    default_credential(),
                    verify_challenge_resource=verify,
                    raw_request_hook=_attempt,
                    connection_timeout=seconds,
                    read_timeout=seconds,
                    retry_total=DEFAULT_RETRIES,
                    retry_connect=0,
                    retry_backoff_factor=0.1,
                    retry_backoff_max=seconds / 4,
                    timeout=seconds,
                )
    return found


class KeyVaultSecretStore(SecretStore):
    """Secrets of one Azure Key Vault, cached. Options: ``endpoint``, ``verify_challenge``, ``cache_ttl``,
    ``timeout``."""

    offload: ClassVar[bool] = True
    upstream: ClassVar[str] = "keyvault"

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        loc = self.location
        if not loc.host and not loc.option("endpoint"):
            raise InvalidArgument(f"{loc}: keyvault:// needs a vault name: keyvault://VAULT[/SECRET]")
        self.vault_url = (loc.option("endpoint") or f"https://{loc.host}.vault.azure.net").rstrip("/")
        self.verify_challenge = (loc.option("verify_challenge") or "true").lower() not in _FALSE
        self.bound = vault_secret_name(loc.path.strip("/"), resource=self.name) if loc.path.strip("/") else None
        self.timeout = deadline(loc)

    def _check(self, name: str) -> None:
        super()._check(name)
        if self.bound is None:
            vault_secret_name(name, resource=self.name)

    def _fetch_blocking(self, name: str) -> str:
        target = self.bound or vault_secret_name(name, resource=self.name)
        try:
            secret = _client(self.vault_url, self.verify_challenge, self.timeout).get_secret(target)
        except az.ResourceNotFoundError as exc:
            raise NotFound(
                f"{self.name}: no secret {name!r} (Key Vault secret {target!r}) in {self.vault_url}",
                resource=self.name,
            ) from exc
        except az.AzureError as exc:
            raise error(exc, self.name, f"read of secret {name!r}") from exc
        if secret.value is None:
            raise NotFound(f"{self.name}: secret {name!r} has no value", resource=self.name)
        return str(secret.value)

    def put(self, name: str, value: str) -> None:
        """Set a secret (for provisioning and tests; apps only read). Needs Key Vault Secrets Officer."""
        self._check(name)
        target = self.bound or vault_secret_name(name, resource=self.name)
        try:
            _client(self.vault_url, self.verify_challenge, self.timeout).set_secret(target, value)
        except az.AzureError as exc:
            raise error(exc, self.name, f"write of secret {name!r}") from exc
        self.invalidate(name)
