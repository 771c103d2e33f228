"""Redis providers (``redis://HOST:PORT/DB``, ``rediss://`` for TLS): a cache, a key-value
store and a durable queue on Redis Streams. Install with ``pip install 'overcast[redis]'``.

Each resource keeps its keys under one hash tag, ``{NAME}``, so that one resource's keys
sit in one Redis Cluster slot and its scripts run atomically there.
"""
