"""The local family: embedded providers (SQLite, files, memory, the environment) and the dev server."""

from __future__ import annotations

from ...resources.registry import Family

_m = "overcast.providers.local"

FAMILY = Family(
    name="local",
    cloud=None,
    schemes={
        "kv": {"sqlite": f"{_m}.sqlite_kv:SQLiteKeyValueStore", "memory": f"{_m}.memory_kv:MemoryKeyValueStore"},
        "bucket": {"file": f"{_m}.files:FileBlobStore", "memory": f"{_m}.memory_blob:MemoryBlobStore"},
        "queue": {"sqlite": f"{_m}.sqlite_queue:SQLiteQueue", "memory": f"{_m}.memory_queue:MemoryQueue"},
        "topic": {"sqlite": f"{_m}.sqlite_queue:SQLiteTopic", "memory": f"{_m}.memory_queue:MemoryTopic"},
        "cache": {"memory": f"{_m}.memory_cache:MemoryCache"},
        "secret": {"env": f"{_m}.env_secrets:EnvSecretStore", "memory": f"{_m}.memory_secrets:MemorySecretStore"},
    },
    upstreams={"file": "files"},
    runtimes={"dev": f"{_m}.devserver:dev_asgi"},
    semantic_conventions={"sqlite": {"db.system": "sqlite"}},
)
