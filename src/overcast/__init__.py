"""Overcast: portable serverless Python across AWS, Google Cloud, Azure and a laptop.

Importing this package loads no cloud SDK; providers are imported when first used.
"""

from __future__ import annotations

from pathlib import Path

from . import errors
from .app import App, ScheduledJob, Subscription
from .resources.blob import BlobStore, ObjectInfo
from .resources.cache import Cache
from .resources.kv import Item, KeyValueStore, Page
from .resources.queue import Message, Queue, Topic
from .resources.registry import open_resource
from .resources.secrets import SecretStore
from .runtime.cloudevent import CloudEvent

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
    store: KeyValueStore = open_resource("kv", url, name=name, base_dir=base_dir)
    return store


def open_bucket(url: str, *, name: str | None = None, base_dir: Path | None = None) -> BlobStore:
    """Open an object store from its URL (``file:///dir``, ``s3://bucket/prefix``, ...)."""
    store: BlobStore = open_resource("bucket", url, name=name, base_dir=base_dir)
    return store


def open_queue(url: str, *, name: str | None = None, base_dir: Path | None = None) -> Queue:
    """Open a queue from its URL (``sqlite:///queue.db``, ``sqs://name``, ...)."""
    queue: Queue = open_resource("queue", url, name=name, base_dir=base_dir)
    return queue


def open_topic(url: str, *, name: str | None = None, base_dir: Path | None = None) -> Topic:
    """Open a topic from its URL (``sqlite:///topic.db``, ``sns://name``, ...)."""
    topic: Topic = open_resource("topic", url, name=name, base_dir=base_dir)
    return topic


def open_cache(url: str, *, name: str | None = None, base_dir: Path | None = None) -> Cache:
    """Open a cache from its URL (``memory://``, ``redis://host:6379/0``, ...)."""
    cache: Cache = open_resource("cache", url, name=name, base_dir=base_dir)
    return cache


def open_secrets(url: str, *, name: str | None = None, base_dir: Path | None = None) -> SecretStore:
    """Open a secret store from its URL (``env://``, ``secretsmanager://``, ...)."""
    store: SecretStore = open_resource("secret", url, name=name, base_dir=base_dir)
    return store
