"""Redis as each cloud's managed instance: priced by the hour, whatever the operations.

The smallest node of ElastiCache (AWS), Memorystore (Google Cloud) and Azure Cache for
Redis, one per resource, running the whole month (730 hours). Operations cost nothing
more; the rules still say what ``cache.py`` and ``kv.py`` send, one command each.
"""

from __future__ import annotations

from pathlib import Path

from ...cost.model import (
    HOURS_PER_MONTH,
    LineItem,
    Offer,
    PriceTable,
    Pricing,
    ResourceUsage,
    Workload,
    one_call_each,
    price_file,
)

__all__ = ["PRICING"]

SERVICES = {"aws": "ElastiCache cache.t4g.micro", "gcp": "Memorystore Basic 1 GB", "azure": "Azure Cache C0 Basic"}

CACHE_RULES = one_call_each("get", "set", "delete", "incr", upper=True)
KV_RULES = one_call_each("get", "put", "put_conditional", "put_absent", "delete", "scan")


def _instance(workload: Workload, usage: ResourceUsage, table: PriceTable, free_tier: bool) -> list[LineItem]:
    return [LineItem.of("instance-hours", HOURS_PER_MONTH, table["redis.instance"], free_tier=free_tier)]


PRICING = Pricing(
    family="redis",
    offers=[
        Offer(kind, "redis", SERVICES[cloud], cloud, rules, _instance)
        for cloud in SERVICES
        for kind, rules in (("cache", CACHE_RULES), ("kv", KV_RULES))
    ],
    prices=price_file(Path(__file__).parent, "prices-redis-{cloud}.json"),
)
