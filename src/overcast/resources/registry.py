"""Which class serves a URL scheme for each kind of resource, loaded only when first used.

Entries are import strings, so naming a provider costs nothing until it is opened;
a missing extra gives one error that says what to install. Third-party packages add
providers through the ``overcast.providers`` entry-point group: an entry named
``KIND.SCHEME`` (``kv.etcd``) whose value is ``module:Class``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependency
from .url import ResourceURL

__all__ = ["CLOUDS", "KINDS", "Provider", "cloud_of", "known_schemes", "open_resource", "register", "resolve"]

KINDS = ("kv", "bucket", "queue", "topic", "cache", "secret")
#: The clouds a target can run on (``cloud = "..."`` in ``[targets.NAME]``); ``local`` is the laptop.
CLOUDS = ("aws", "gcp", "azure")
ENTRY_POINT_GROUP = "overcast.providers"


@dataclass(frozen=True)
class Provider:
    """A registry entry: the class behind ``scheme`` for ``kind`` and how to install it."""

    kind: str
    scheme: str
    target: str
    extra: str | None = None

    @property
    def cloud(self) -> str | None:
        """The cloud whose service this is (``aws``, ``gcp``, ``azure``), or None for providers
        that run anywhere (embedded, Redis, PostgreSQL, Momento, third-party ones)."""
        return self.extra if self.extra in CLOUDS else None

    @property
    def install(self) -> str | None:
        return f"pip install 'overcast[{self.extra}]'" if self.extra else None


_local = "overcast.providers.local"
_BUILTIN: list[Provider] = [
    Provider("kv", "sqlite", f"{_local}.sqlite_kv:SQLiteKeyValueStore"),
    Provider("kv", "memory", f"{_local}.memory_kv:MemoryKeyValueStore"),
    Provider("bucket", "file", f"{_local}.files:FileBlobStore"),
    Provider("bucket", "memory", f"{_local}.memory_blob:MemoryBlobStore"),
    Provider("queue", "sqlite", f"{_local}.sqlite_queue:SQLiteQueue"),
    Provider("queue", "memory", f"{_local}.memory_queue:MemoryQueue"),
    Provider("topic", "sqlite", f"{_local}.sqlite_queue:SQLiteTopic"),
    Provider("topic", "memory", f"{_local}.memory_queue:MemoryTopic"),
    Provider("cache", "memory", f"{_local}.memory_cache:MemoryCache"),
    Provider("secret", "env", f"{_local}.env_secrets:EnvSecretStore"),
    Provider("secret", "memory", f"{_local}.memory_secrets:MemorySecretStore"),
    # Providers of later families: named here so their install hint is known.
    Provider("kv", "dynamodb", "overcast.providers.aws.dynamodb:DynamoDBKeyValueStore", "aws"),
    Provider("bucket", "s3", "overcast.providers.aws.s3:S3BlobStore", "aws"),
    Provider("queue", "sqs", "overcast.providers.aws.sqs:SQSQueue", "aws"),
    Provider("topic", "sns", "overcast.providers.aws.sns:SNSTopic", "aws"),
    Provider("secret", "secretsmanager", "overcast.providers.aws.secrets:SecretsManagerSecretStore", "aws"),
    Provider("secret", "ssm", "overcast.providers.aws.secrets:SSMSecretStore", "aws"),
    Provider("kv", "firestore", "overcast.providers.gcp.firestore:FirestoreKeyValueStore", "gcp"),
    Provider("bucket", "gs", "overcast.providers.gcp.gcs:GCSBlobStore", "gcp"),
    Provider("queue", "pubsub", "overcast.providers.gcp.pubsub:PubSubQueue", "gcp"),
    Provider("topic", "pubsub", "overcast.providers.gcp.pubsub:PubSubTopic", "gcp"),
    Provider("secret", "gsm", "overcast.providers.gcp.secrets:SecretManagerSecretStore", "gcp"),
    Provider("kv", "azuretables", "overcast.providers.azure.tables:AzureTableKeyValueStore", "azure"),
    Provider("bucket", "azblob", "overcast.providers.azure.blob:AzureBlobStore", "azure"),
    Provider("queue", "azqueue", "overcast.providers.azure.queues:AzureStorageQueue", "azure"),
    Provider("topic", "azqueue", "overcast.providers.azure.queues:AzureStorageTopic", "azure"),
    Provider("secret", "keyvault", "overcast.providers.azure.keyvault:KeyVaultSecretStore", "azure"),
    Provider("cache", "redis", "overcast.providers.redis.cache:RedisCache", "redis"),
    Provider("cache", "rediss", "overcast.providers.redis.cache:RedisCache", "redis"),
    Provider("kv", "redis", "overcast.providers.redis.kv:RedisKeyValueStore", "redis"),
    Provider("queue", "redis", "overcast.providers.redis.queue:RedisQueue", "redis"),
    Provider("queue", "rediss", "overcast.providers.redis.queue:RedisQueue", "redis"),
    Provider("topic", "redis", "overcast.providers.redis.queue:RedisTopic", "redis"),
    Provider("topic", "rediss", "overcast.providers.redis.queue:RedisTopic", "redis"),
    Provider("kv", "rediss", "overcast.providers.redis.kv:RedisKeyValueStore", "redis"),
    Provider("cache", "momento", "overcast.providers.momento.cache:MomentoCache", "momento"),
    Provider("kv", "postgresql", "overcast.providers.postgres.kv:PostgresKeyValueStore", "postgres"),
    Provider("queue", "postgresql", "overcast.providers.postgres.queue:PostgresQueue", "postgres"),
    Provider("topic", "postgresql", "overcast.providers.postgres.queue:PostgresTopic", "postgres"),
]

_registry: dict[tuple[str, str], Provider] = {(p.kind, p.scheme): p for p in _BUILTIN}
_entry_points_loaded = False


def register(kind: str, scheme: str, target: str, *, extra: str | None = None) -> None:
    """Add or replace the provider for ``kind`` and ``scheme`` (``target`` is ``module:Class``)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown resource kind {kind!r}; kinds are {', '.join(KINDS)}")
    _registry[(kind, scheme)] = Provider(kind, scheme, target, extra)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points  # costly to import; needed only to resolve a scheme

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kind, _, scheme = ep.name.partition(".")
        if kind in KINDS and scheme:
            _registry.setdefault((kind, scheme), Provider(kind, scheme, ep.value))


def cloud_of(kind: str, scheme: str) -> str | None:
    """The cloud of the provider behind ``kind``/``scheme`` (see :attr:`Provider.cloud`)."""
    provider = _registry.get((kind, scheme))
    return provider.cloud if provider is not None else None


def known_schemes(kind: str) -> list[str]:
    _load_entry_points()
    return sorted(scheme for k, scheme in _registry if k == kind)


def resolve(kind: str, scheme: str, *, resource: str) -> type[Any]:
    """Import and return the class for ``kind``/``scheme``, or raise a clear error."""
    provider = _registry.get((kind, scheme))
    if provider is None:
        _load_entry_points()
        provider = _registry.get((kind, scheme))
    if provider is None:
        raise ConfigError(
            f"{kind} {resource!r}: unknown scheme {scheme!r}; "
            f"known schemes for {kind}: {', '.join(known_schemes(kind))}"
        )
    module_name, _, attr = provider.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; run: {provider.install}" if provider.install else ""
        raise MissingDependency(
            f"{kind} {resource!r} uses scheme {scheme!r}, whose provider could not be imported ({exc}){hint}"
        ) from exc
    cls: type[Any] = getattr(module, attr)
    return cls


def open_resource(kind: str, url: str | ResourceURL, *, name: str | None = None, base_dir: Path | None = None) -> Any:
    """Open the provider behind ``url`` for a resource of ``kind``."""
    parsed = url if isinstance(url, ResourceURL) else ResourceURL.parse(url, base_dir=base_dir)
    cls = resolve(kind, parsed.scheme, resource=name or str(parsed))
    return cls(parsed, name=name)
