"""The Redis family (``redis://``, ``rediss://`` for TLS): reached the same way from every cloud."""

from __future__ import annotations

from ...resources.registry import Family

_m = "overcast.providers.redis"

FAMILY = Family(
    name="redis",
    extra="redis",
    requires=("redis",),
    schemes={
        "cache": {"redis": f"{_m}.cache:RedisCache", "rediss": f"{_m}.cache:RedisCache"},
        "kv": {"redis": f"{_m}.kv:RedisKeyValueStore", "rediss": f"{_m}.kv:RedisKeyValueStore"},
        "queue": {"redis": f"{_m}.queue:RedisQueue", "rediss": f"{_m}.queue:RedisQueue"},
        "topic": {"redis": f"{_m}.queue:RedisTopic", "rediss": f"{_m}.queue:RedisTopic"},
    },
    upstreams={"rediss": "redis"},
    semantic_conventions={
        scheme: {"db.system": "redis", "server.address": "{host}", "server.port": "{port}"}
        for scheme in ("redis", "rediss")
    },
    pricing="overcast.providers.redis.pricing:PRICING",
)
