"""The provider-neutral interfaces, their value types, and the provider registry."""

from .blob import BlobStore, ObjectInfo
from .cache import Cache
from .kv import Item, KeyValueStore, Page
from .queue import Message, Queue, Topic
from .secrets import SecretStore

__all__ = [
    "BlobStore",
    "Cache",
    "Item",
    "KeyValueStore",
    "Message",
    "ObjectInfo",
    "Page",
    "Queue",
    "SecretStore",
    "Topic",
]
