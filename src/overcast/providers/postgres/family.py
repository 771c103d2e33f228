"""The PostgreSQL family: a key-value store, queues and topics, reached the same way from every cloud."""

from __future__ import annotations

from ...resources.registry import Family

_m = "overcast.providers.postgres"

FAMILY = Family(
    name="postgres",
    extra="postgres",
    requires=("psycopg", "psycopg_pool"),
    schemes={
        "kv": {"postgresql": f"{_m}.kv:PostgresKeyValueStore"},
        "queue": {"postgresql": f"{_m}.queue:PostgresQueue"},
        "topic": {"postgresql": f"{_m}.queue:PostgresTopic"},
    },
    upstreams={"postgresql": "postgres"},
    semantic_conventions={
        "postgresql": {"db.system": "postgresql", "server.address": "{host}", "server.port": "{port}"}
    },
    pricing="overcast.providers.postgres.pricing:PRICING",
)
