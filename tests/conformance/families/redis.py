"""The Redis providers under the conformance suites, on redis-server from Debian (tests/servers/redis.py):
one server, and a three-node cluster."""

from __future__ import annotations

import os
from pathlib import Path

from ..providers import Case


def _redis(tmp: Path, name: str) -> str:
    return f"{os.environ['OVERCAST_TEST_REDIS_URL']}?prefix={name}"


def _cluster(tmp: Path, name: str) -> str:
    return f"{os.environ['OVERCAST_TEST_REDIS_CLUSTER_URL']}?cluster=true&prefix={name}"


CASES: list[Case] = [
    Case("cache", "redis", _redis, server="redis_server"),
    Case("kv", "redis", _redis, server="redis_server"),
    Case("queue", "redis", _redis, server="redis_server"),
    Case("topic", "redis", _redis, server="redis_server"),
    # The same providers on a three-node Redis Cluster (redis-py's cluster client); the cache's
    # single-key commands add nothing there that the KV store's scripts and transactions do not.
    Case("kv", "redis", _cluster, server="redis_cluster", title="RedisCluster"),
    Case("queue", "redis", _cluster, server="redis_cluster", title="RedisCluster"),
    Case("topic", "redis", _cluster, server="redis_cluster", title="RedisCluster"),
]
