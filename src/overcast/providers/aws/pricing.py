"""AWS prices and unit rules: what each Overcast operation costs in the services' own units.

The rules follow how this family's providers call the services (``dynamodb.py``,
``s3.py``, ``sqs.py``, ``sns.py``, ``secrets.py``); ``tests/cost`` counts the requests
each operation sends to moto and compares them with these rules. Prices are in
``prices-aws.json`` beside this file, dated, with the address of every figure.
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
    Workload,
    ceil_units,
    price_file,
    unit_pricer,
)

__all__ = ["PRICING", "dynamodb_item_bytes", "number_bytes"]

#: A typical key, the default partition and a version as ``new_version()`` makes them.
KEY_BYTES = 32
PARTITION = "kv"
#: 16 hex digits, "-", and the process's write counter in hex: up to 8 digits (4 billion
#: writes) counted, so the estimate stays an upper bound in a long-lived process
VERSION_BYTES = 25
SCAN_PAGE = 25  # items a priced ``scan`` operation reads (one Query page)
CHUNK = 64 * 1024  # SQS and SNS bill each 64 KB of a payload as one request


def number_bytes(text: str) -> int:
    """DynamoDB's size of a number: one byte per two significant digits, plus one."""
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def dynamodb_item_bytes(doc_bytes: int, key_bytes: int = KEY_BYTES, partition: str = PARTITION) -> int:
    """The size DynamoDB bills for the item ``dynamodb.py`` writes: attribute names plus values
    (``pk`` the partition, ``sk`` the key, ``doc`` the JSON text, ``ver`` the version)."""
    return 2 + len(partition.encode()) + 2 + key_bytes + 3 + doc_bytes + 3 + VERSION_BYTES


def _item(size: int) -> int:
    return dynamodb_item_bytes(size)


DYNAMODB_RULES = {
    "get": lambda size: [Call("GetItem", {"rru": ceil_units(_item(size), 4096)})],  # strongly consistent
    "put": lambda size: [Call("PutItem", {"wru": ceil_units(_item(size), 1024)})],
    # a condition costs nothing more, and a failed one still consumes the write
    "put_conditional": lambda size: [Call("PutItem", {"wru": ceil_units(_item(size), 1024)})],
    "put_absent": lambda size: [Call("PutItem", {"wru": ceil_units(_item(size), 1024)})],
    "delete": lambda size: [Call("DeleteItem", {"wru": ceil_units(_item(size), 1024)})],
    "scan": lambda size: [Call("Query", {"rru": ceil_units(SCAN_PAGE * _item(size), 4096)})],
}

S3_RULES = {
    "put": lambda size: [Call("PutObject", {"tier1": 1})],
    "get": lambda size: [Call("GetObject", {"tier2": 1})],
    "head": lambda size: [Call("HeadObject", {"tier2": 1})],
    # delete() says whether the object was there: a HEAD (billed), then the DELETE (free)
    "delete": lambda size: [Call("HeadObject", {"tier2": 1}), Call("DeleteObject")],
    "list": lambda size: [Call("ListObjectsV2", {"tier1": 1})],
}

SQS_RULES = {
    "send": lambda size: [Call("SendMessage", {"requests": ceil_units(size, CHUNK)})],
    "receive": lambda size: [Call("ReceiveMessage", {"requests": ceil_units(size, CHUNK)})],
    "ack": lambda size: [Call("DeleteMessage", {"requests": 1})],
}

SNS_RULES = {
    "publish": lambda size: [Call("Publish", {"publishes": ceil_units(size, CHUNK)})],
}

SECRETS_RULES = {
    "get": lambda size: [Call("GetSecretValue", {"api_calls": 1})],  # on a cache miss only: see _cached
}


def _deliveries(workload: Workload, usage: ResourceUsage, units: dict[str, float]) -> None:
    """Each subscription's queue receives and deletes every published message (SNS→SQS delivery is free)."""
    published = workload.requests * usage.ops.get("publish", 0.0)
    units["requests"] = units.get("requests", 0.0) + 2 * published * usage.subscriptions * ceil_units(
        usage.item_bytes, CHUNK
    )


def _cached(workload: Workload, usage: ResourceUsage, units: dict[str, float]) -> None:
    """A value read through ``app.secret`` is fetched at most once per cache TTL per instance."""
    units["api_calls"] = workload.secret_reads(usage)
    units["secrets"] = 1.0


def _lambda(workload: Workload, table: PriceTable, free_tier: bool) -> list[LineItem]:
    """Requests, and GB-seconds of duration rounded up to the millisecond."""
    gb_seconds = workload.requests * math.ceil(workload.duration_ms) / 1000 * workload.memory_mb / 1024
    return [
        LineItem.of("requests", workload.requests, table["lambda.requests"], free_tier=free_tier),
        LineItem.of("duration (GB-s)", gb_seconds, table["lambda.duration"], free_tier=free_tier),
    ]


def _egress(gb: float, table: PriceTable, free_tier: bool) -> LineItem:
    return LineItem.of("internet egress (GB)", gb, table["egress.internet"], free_tier=free_tier)


OFFERS = [
    Offer(
        "kv",
        "dynamodb",
        "DynamoDB on-demand",
        "aws",
        DYNAMODB_RULES,
        unit_pricer(DYNAMODB_RULES, {"wru": "dynamodb.wru", "rru": "dynamodb.rru"}, storage="dynamodb.storage"),
    ),
    Offer(
        "bucket",
        "s3",
        "S3 Standard",
        "aws",
        S3_RULES,
        unit_pricer(S3_RULES, {"tier1": "s3.tier1", "tier2": "s3.tier2"}, storage="s3.storage"),
    ),
    Offer("queue", "sqs", "SQS standard", "aws", SQS_RULES, unit_pricer(SQS_RULES, {"requests": "sqs.requests"})),
    Offer(
        "topic",
        "sns",
        "SNS + SQS subscriptions",
        "aws",
        SNS_RULES,
        unit_pricer(SNS_RULES, {"publishes": "sns.publishes", "requests": "sqs.requests"}, adjust=_deliveries),
    ),
    Offer(
        "secret",
        "secretsmanager",
        "Secrets Manager",
        "aws",
        SECRETS_RULES,
        unit_pricer(
            SECRETS_RULES, {"secrets": "secretsmanager.secrets", "api_calls": "secretsmanager.api"}, adjust=_cached
        ),
    ),
]



PRICING = Pricing(
    family="aws",
    offers=OFFERS,
    prices=price_file(Path(__file__).parent, "prices-aws.json"),
    compute=ComputeOffer("Lambda (x86)", _lambda),
    egress=_egress,
    clouds=("aws",),
    refresh="overcast.providers.aws.price_list:refresh",
)
