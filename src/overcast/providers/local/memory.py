"""In-process providers of every kind, for tests and quick experiments: ``memory://NAME``.

Resources opened with the same name (the URL host) in one process share their
data, so ``open_kv("memory://users")`` twice sees the same items; ``memory://``
without a name is private to the instance. Nothing survives the process.

Every operation is a few dictionary steps under a lock, so these providers run
on the event loop (``offload = False``) instead of in a worker thread. They keep
the semantics of the durable providers: versions that never repeat, conditional
writes, TTL, ordered scans, visibility timeouts, delay, dead letters, fan-out.
Decisions are those of :mod:`overcast.providers.local.sqlite_queue` for queues
(stale acks are ignored; a topic without subscriptions drops what it gets).
"""

from __future__ import annotations

from .memory_blob import MemoryBlobStore
from .memory_cache import MemoryCache
from .memory_kv import MemoryKeyValueStore
from .memory_queue import MemoryQueue, MemoryTopic
from .memory_secrets import MemorySecretStore

__all__ = [
    "MemoryBlobStore",
    "MemoryCache",
    "MemoryKeyValueStore",
    "MemoryQueue",
    "MemorySecretStore",
    "MemoryTopic",
]
