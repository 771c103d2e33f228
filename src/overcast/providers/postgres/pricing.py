"""PostgreSQL as each cloud's managed instance: instance-hours and storage.

The smallest instance of RDS (AWS), Cloud SQL (Google Cloud) and Azure Database for
PostgreSQL flexible server, one per resource, for the whole month (730 hours).
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

SERVICES = {"aws": "RDS db.t4g.micro", "gcp": "Cloud SQL db-f1-micro", "azure": "Flexible server B1ms"}

KV_RULES = one_call_each("get", "put", "put_conditional", "put_absent", "delete", "scan")
QUEUE_RULES = one_call_each("send", "receive", "ack")


def _instance(workload: Workload, usage: ResourceUsage, table: PriceTable, free_tier: bool) -> list[LineItem]:
    items = [LineItem.of("instance-hours", HOURS_PER_MONTH, table["postgres.instance"], free_tier=free_tier)]
    stored = max(usage.stored_gb, 20.0)  # the smallest disk is 20 GB
    items.append(LineItem.of("storage", stored, table["postgres.storage"], free_tier=False))
    return items


PRICING = Pricing(
    family="postgres",
    offers=[
        Offer(kind, "postgresql", SERVICES[cloud], cloud, rules, _instance)
        for cloud in SERVICES
        for kind, rules in (("kv", KV_RULES), ("queue", QUEUE_RULES))
    ],
    prices=price_file(Path(__file__).parent, "prices-postgres-{cloud}.json"),
)
