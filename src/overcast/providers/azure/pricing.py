"""Azure prices and unit rules: storage transactions for Table, Blob and Queue storage, Key
Vault operations, Azure Functions' consumption plan.

The rules follow this family's providers (``tables.py``, ``blob.py``, ``queues.py``,
``keyvault.py``); ``tests/cost`` counts the requests each operation sends to Azurite.
Prices are in ``prices-azure.json`` beside this file.
"""

from __future__ import annotations

import math
from pathlib import Path

from ...cost.model import (
    Call,
    ComputeOffer,
    LineItem,
    Offer,
    PriceTable,
    Pricing,
    ResourceUsage,
    Rule,
    Workload,
    ceil_units,
    price_file,
    unit_pricer,
)

__all__ = ["PRICING"]

SCAN_PAGE = 25
CHUNK = 64 * 1024  # a queue message is at most 64 KB: one transaction
MAX_MEMORY_MB = 1536  # memory is measured up to this on the consumption plan


TABLE_RULES = {
    "get": lambda size: [Call("GET entity", {"transactions": 1})],
    "put": lambda size: [Call("PUT entity", {"transactions": 1})],
    "put_absent": lambda size: [Call("POST entity", {"transactions": 1})],
    "put_conditional": lambda size: [Call("PUT entity", {"transactions": 1})],  # If-Match on the ETag
    "delete": lambda size: [Call("DELETE entity", {"transactions": 1})],
    "scan": lambda size: [Call("GET query", {"transactions": 1})],
}

BLOB_RULES = {
    "put": lambda size: [Call("PUT blob", {"writes": 1})],
    "get": lambda size: [Call("GET blob", {"reads": 1})],
    "head": lambda size: [Call("HEAD blob", {"reads": 1})],
    "delete": lambda size: [Call("DELETE blob")],  # free
    "list": lambda size: [Call("GET list", {"lists": 1})],
}

QUEUE_RULES = {
    "send": lambda size: [Call("POST message", {"transactions": ceil_units(size, CHUNK)})],
    "receive": lambda size: [Call("GET messages", {"transactions": 1})],
    "ack": lambda size: [Call("DELETE message", {"transactions": 1})],
}

TOPIC_RULES: dict[str, Rule] = {
    # a topic is one queue per subscription: a publish lists them, then sends to each (_fanout)
    "publish": lambda size: [Call("GET queues", {"transactions": 1})],
}

KEYVAULT_RULES = {
    "get": lambda size: [Call("GET secret", {"operations": 1})],
}


def _fanout(workload: Workload, usage: ResourceUsage, units: dict[str, float]) -> None:
    """A publish sends to each subscription's queue, which receives and deletes it."""
    published = workload.requests * usage.ops.get("publish", 0.0)
    units["transactions"] = units.get("transactions", 0.0) + 3 * published * usage.subscriptions


def _cached(workload: Workload, usage: ResourceUsage, units: dict[str, float]) -> None:
    units["operations"] = workload.secret_reads(usage)


def _functions(workload: Workload, table: PriceTable, free_tier: bool) -> list[LineItem]:
    """Consumption plan: executions, and GB-s with memory rounded up to 128 MB (at most
    1,536 MB, the plan's largest) and at least 100 ms and 128 MB an execution."""
    memory_gb = min(MAX_MEMORY_MB, max(128, math.ceil(workload.memory_mb / 128) * 128)) / 1024
    seconds = max(100.0, workload.duration_ms) / 1000
    return [
        LineItem.of("executions", workload.requests, table["functions.executions"], free_tier=free_tier),
        LineItem.of(
            "execution time (GB-s)",
            workload.requests * seconds * memory_gb,
            table["functions.gb_seconds"],
            free_tier=free_tier,
        ),
    ]


def _egress(gb: float, table: PriceTable, free_tier: bool) -> LineItem:
    return LineItem.of("internet egress (GB)", gb, table["egress.internet"], free_tier=free_tier)


OFFERS = [
    Offer(
        "kv",
        "azuretables",
        "Table storage (LRS)",
        "azure",
        TABLE_RULES,
        unit_pricer(TABLE_RULES, {"transactions": "tables.transactions"}, storage="tables.storage"),
    ),
    Offer(
        "bucket",
        "azblob",
        "Blob storage hot (LRS)",
        "azure",
        BLOB_RULES,
        unit_pricer(
            BLOB_RULES, {"writes": "blob.writes", "reads": "blob.reads", "lists": "blob.lists"}, storage="blob.storage"
        ),
    ),
    Offer(
        "queue",
        "azqueue",
        "Queue storage (LRS)",
        "azure",
        QUEUE_RULES,
        unit_pricer(QUEUE_RULES, {"transactions": "queues.transactions"}),
    ),
    Offer(
        "topic",
        "azqueue",
        "Queue storage, a queue per subscription",
        "azure",
        TOPIC_RULES,
        unit_pricer(TOPIC_RULES, {"transactions": "queues.transactions"}, adjust=_fanout),
    ),
    Offer(
        "secret",
        "keyvault",
        "Key Vault (standard)",
        "azure",
        KEYVAULT_RULES,
        unit_pricer(KEYVAULT_RULES, {"operations": "keyvault.operations"}, adjust=_cached),
    ),
]



PRICING = Pricing(
    family="azure",
    offers=OFFERS,
    prices=price_file(Path(__file__).parent, "prices-azure.json"),
    compute=ComputeOffer("Functions (consumption)", _functions),
    egress=_egress,
    clouds=("azure",),
    refresh="overcast.providers.azure.retail_prices:refresh",
)
