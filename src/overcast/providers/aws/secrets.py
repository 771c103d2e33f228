"""Secrets from AWS Secrets Manager (``secretsmanager://PREFIX``) and SSM Parameter Store (``ssm://PATH``).

``secretsmanager://prod`` reads the secret ``prod/NAME`` (``secretsmanager://`` alone
reads ``NAME``); the value is the secret's ``SecretString`` (a binary secret is decoded as
UTF-8). ``ssm://prod/app`` reads the parameter ``/prod/app/NAME`` with decryption, so
``SecureString`` parameters work. Values are cached for ``cache_ttl`` seconds (300 by
default; see :mod:`overcast.resources.secrets`), so a warm function calls the service
once per name per five minutes.

URL options: ``region``, ``endpoint``, ``cache_ttl``.

IAM: ``secretsmanager:GetSecretValue`` (and ``kms:Decrypt`` for a customer key);
``ssm:GetParameter`` (and ``kms:Decrypt`` for ``SecureString``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...errors import NotFound, ProviderError
from ...resources.secrets import SecretStore
from ._client import aws_error, client, error_code

__all__ = ["SSMSecretStore", "SecretsManagerSecretStore"]

_ABSENT = frozenset({"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"})


class _AWSSecretStore(SecretStore):
    service: ClassVar[str] = ""
    offload: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client(self.service, self.location)
        return self._client

    def secret_id(self, name: str) -> str:
        raise NotImplementedError

    def _error(self, exc: Exception, name: str) -> ProviderError:
        about = f"{self.name}: {self.service} secret {self.secret_id(name)!r}"
        if error_code(exc) in _ABSENT:
            return NotFound(f"{about} (name {name!r}) does not exist", resource=self.name)
        return aws_error(exc, about, resource=self.name)


class SecretsManagerSecretStore(_AWSSecretStore):
    """Secrets in AWS Secrets Manager, under an optional name prefix."""

    service: ClassVar[str] = "secretsmanager"

    def secret_id(self, name: str) -> str:
        prefix = "/".join(part for part in (self.location.host, self.location.path.strip("/")) if part)
        return f"{prefix}/{name}" if prefix else name

    def _fetch_blocking(self, name: str) -> str:
        try:
            response = self.client.get_secret_value(SecretId=self.secret_id(name))
        except Exception as exc:
            raise self._error(exc, name) from exc
        if "SecretString" in response:
            return str(response["SecretString"])
        return bytes(response["SecretBinary"]).decode()

    def put(self, name: str, value: str) -> None:
        """Create or update the secret ``name`` (for dev, tests and emulators)."""
        self._check(name)
        secret_id = self.secret_id(name)
        try:
            self.client.put_secret_value(SecretId=secret_id, SecretString=value)
        except Exception as exc:
            if error_code(exc) not in _ABSENT:
                raise self._error(exc, name) from exc
            try:
                self.client.create_secret(Name=secret_id, SecretString=value)
            except Exception as exc2:
                raise self._error(exc2, name) from exc2
        self.invalidate(name)


class SSMSecretStore(_AWSSecretStore):
    """Parameters in SSM Parameter Store under a path, decrypted."""

    service: ClassVar[str] = "ssm"

    def secret_id(self, name: str) -> str:
        path = "/".join(part for part in (self.location.host, self.location.path.strip("/")) if part)
        return f"/{path}/{name}" if path else name

    def _fetch_blocking(self, name: str) -> str:
        try:
            response = self.client.get_parameter(Name=self.secret_id(name), WithDecryption=True)
        except Exception as exc:
            raise self._error(exc, name) from exc
        return str(response["Parameter"]["Value"])

    def put(self, name: str, value: str) -> None:
        """Store ``value`` as a ``SecureString`` parameter (for dev, tests and emulators)."""
        self._check(name)
        try:
            self.client.put_parameter(Name=self.secret_id(name), Value=value, Type="SecureString", Overwrite=True)
        except Exception as exc:
            raise self._error(exc, name) from exc
        self.invalidate(name)
