"""Overcast: portable serverless Python across AWS, Google Cloud, Azure and a laptop.

Importing this package loads no cloud SDK; providers are imported when first used.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from . import errors

if _typing.TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .app import App, ScheduledJob, Subscription
    from .resources.blob import BlobStore, ObjectInfo
    from .resources.cache import Cache
    from .resources.kv import Item, KeyValueStore, Page
    from .resources.queue import Message, Queue, Topic
    from .resources.secrets import SecretStore
    from .runtime.cloudevent import CloudEvent
    from .runtime.deferral import Receipt

# The public names load on first use (PEP 562), so ``import overcast`` costs little and
# ``overcast --version`` or a module that only declares errors pays for nothing else.
_LAZY = {
    "App": ".app",
    "ScheduledJob": ".app",
    "Subscription": ".app",
    "BlobStore": ".resources.blob",
    "ObjectInfo": ".resources.blob",
    "Cache": ".resources.cache",
    "Item": ".resources.kv",
    "KeyValueStore": ".resources.kv",
    "Page": ".resources.kv",
    "Message": ".resources.queue",
    "Queue": ".resources.queue",
    "Topic": ".resources.queue",
    "SecretStore": ".resources.secrets",
    "CloudEvent": ".runtime.cloudevent",
    "Receipt": ".runtime.deferral",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'overcast' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _open(kind: str, url: str, name: str | None, base_dir: Path | None) -> Any:
    from . import telemetry
    from .resources.registry import open_resource

    return telemetry.timed(open_resource(kind, url, name=name, base_dir=base_dir))


__version__ = "0.1.0"

__all__ = [
    "App",
    "BlobStore",
    "Cache",
    "CloudEvent",
    "Item",
    "KeyValueStore",
    "Message",
    "ObjectInfo",
    "Page",
    "Queue",
    "Receipt",
    "ScheduledJob",
    "SecretStore",
    "Subscription",
    "Topic",
    "__version__",
    "errors",
    "open_bucket",
    "open_cache",
    "open_kv",
    "open_queue",
    "open_secrets",
    "open_topic",
]


def open_kv(url: str, *, name: str | None = None, base_dir: Path | None = None) -> KeyValueStore:
    """Open a key-value store from its URL (``sqlite:///app.db``, ``dynamodb://table``, ...)."""
    store: KeyValueStore = _open("kv", url, name, base_dir)
    return store


def open_bucket(url: str, *, name: str | None = None, base_dir: Path | None = None) -> BlobStore:
    """Open an object store from its URL (``file://dir``, ``file:///abs/dir``, ``s3://bucket/prefix``, ...)."""
    store: BlobStore = _open("bucket", url, name, base_dir)
    return store


def open_queue(url: str, *, name: str | None = None, base_dir: Path | None = None) -> Queue:
    """Open a queue from its URL (``sqlite:///queue.db``, ``sqs://name``, ...)."""
    queue: Queue = _open("queue", url, name, base_dir)
    return queue


def open_topic(url: str, *, name: str | None = None, base_dir: Path | None = None) -> Topic:
    """Open a topic from its URL (``sqlite:///topic.db``, ``sns://name``, ...)."""
    topic: Topic = _open("topic", url, name, base_dir)
    return topic


def open_cache(url: str, *, name: str | None = None, base_dir: Path | None = None) -> Cache:
    """Open a cache from its URL (``memory://``, ``redis://host:6379/0``, ...)."""
    cache: Cache = _open("cache", url, name, base_dir)
    return cache


def open_secrets(url: str, *, name: str | None = None, base_dir: Path | None = None) -> SecretStore:
    """Open a secret store from its URL (``env://``, ``secretsmanager://``, ...)."""
    store: SecretStore = _open("secret", url, name, base_dir)
    return store
