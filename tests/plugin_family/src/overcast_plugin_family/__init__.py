"""A test-only provider family (``plugkv://``, ``plugq://``): a KV store and a queue in SQLite files."""
