"""The plugin family's providers: a SQLite file per resource, built on Overcast's public
embedded SQLite providers (a third party may extend any provider class)."""

from __future__ import annotations

from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore
from overcast.providers.local.sqlite_queue import SQLiteQueue


class PluginKeyValueStore(SQLiteKeyValueStore):
    """``plugkv:///path/to/file.db``."""


class PluginQueue(SQLiteQueue):
    """``plugq:///path/to/file.db``."""
