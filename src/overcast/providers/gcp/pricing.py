"""Google Cloud prices and unit rules: Firestore document operations, Cloud Storage operation
classes, Pub/Sub throughput, Secret Manager accesses, Cloud Run request-based billing.

The rules follow this family's providers (``firestore.py``: a conditional put or a delete
reads the document, then writes under an update-time precondition; ``gcs.py``;
``pubsub.py``); ``tests/cost`` counts the calls each operation makes against the emulators.
Prices are in ``prices-gcp.json`` beside this file.
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
    price_file,
    unit_pricer,
)

__all__ = ["PRICING"]

SCAN_PAGE = 25
PUBSUB_MINIMUM = 1000  # bytes billed at least per publish, pull or push request
TIB = 1024**4
VCPU = 1.0  # Cloud Run's default CPU for a service


FIRESTORE_RULES = {
    "get": lambda size: [Call("GetDocument", {"reads": 1})],
    "put": lambda size: [Call("Commit", {"writes": 1})],
    "put_absent": lambda size: [Call("Commit", {"writes": 1})],  # create(): a precondition, not a read
    "put_conditional": lambda size: [Call("BatchGetDocuments", {"reads": 1}), Call("Commit", {"writes": 1})],
    "delete": lambda size: [Call("BatchGetDocuments", {"reads": 1}), Call("Commit", {"deletes": 1})],
    "scan": lambda size: [Call("RunQuery", {"reads": SCAN_PAGE})],
}

GCS_RULES = {
    "put": lambda size: [Call("POST upload", {"class_a": 1})],
    "get": lambda size: [Call("GET object", {"class_b": 1})],
    "head": lambda size: [Call("GET metadata", {"class_b": 1})],
    "delete": lambda size: [Call("DELETE object")],  # free
    "list": lambda size: [Call("GET list", {"class_a": 1})],
}


def _throughput(size: int) -> float:
    return max(PUBSUB_MINIMUM, size) / TIB


PUBSUB_QUEUE_RULES = {
    "send": lambda size: [Call("Publish", {"tib": _throughput(size)})],
    "receive": lambda size: [Call("Pull", {"tib": _throughput(size)})],
    "ack": lambda size: [Call("Acknowledge")],  # no throughput charge
}

PUBSUB_TOPIC_RULES = {
    "publish": lambda size: [Call("Publish", {"tib": _throughput(size)})],
}

SECRET_RULES = {
    "get": lambda size: [Call("AccessSecretVersion", {"accesses": 1})],
}


def _deliveries(workload: Workload, usage: ResourceUsage, units: dict[str, float]) -> None:
    """Each subscription pulls every published message: delivery throughput, per subscription."""
    published = workload.requests * usage.ops.get("publish", 0.0)
    units["tib"] = units.get("tib", 0.0) + published * usage.subscriptions * _throughput(usage.item_bytes)


def _cached(workload: Workload, usage: ResourceUsage, units: dict[str, float]) -> None:
    units["accesses"] = workload.secret_reads(usage)
    units["versions"] = 1.0


def _cloud_run(workload: Workload, table: PriceTable, free_tier: bool) -> list[LineItem]:
    """Request-based billing, one request at a time per instance (concurrency 1, an upper
    bound), each request's time rounded up to 100 ms."""
    seconds = workload.requests * math.ceil(workload.duration_ms / 100) / 10
    return [
        LineItem.of("vCPU-seconds", seconds * VCPU, table["run.cpu"], free_tier=free_tier),
        LineItem.of("GiB-seconds", seconds * workload.memory_mb / 1024, table["run.memory"], free_tier=free_tier),
        LineItem.of("requests", workload.requests, table["run.requests"], free_tier=free_tier),
    ]


def _egress(gb: float, table: PriceTable, free_tier: bool) -> LineItem:
    return LineItem.of("internet egress (GB)", gb, table["egress.internet"], free_tier=free_tier)


OFFERS = [
    Offer(
        "kv",
        "firestore",
        "Firestore",
        "gcp",
        FIRESTORE_RULES,
        unit_pricer(
            FIRESTORE_RULES,
            {"reads": "firestore.reads", "writes": "firestore.writes", "deletes": "firestore.deletes"},
            storage="firestore.storage",
        ),
    ),
    Offer(
        "bucket",
        "gs",
        "Cloud Storage Standard",
        "gcp",
        GCS_RULES,
        unit_pricer(GCS_RULES, {"class_a": "gcs.class_a", "class_b": "gcs.class_b"}, storage="gcs.storage"),
    ),
    Offer(
        "queue",
        "pubsub",
        "Pub/Sub",
        "gcp",
        PUBSUB_QUEUE_RULES,
        unit_pricer(PUBSUB_QUEUE_RULES, {"tib": "pubsub.throughput"}),
    ),
    Offer(
        "topic",
        "pubsub",
        "Pub/Sub",
        "gcp",
        PUBSUB_TOPIC_RULES,
        unit_pricer(PUBSUB_TOPIC_RULES, {"tib": "pubsub.throughput"}, adjust=_deliveries),
    ),
    Offer(
        "secret",
        "gsm",
        "Secret Manager",
        "gcp",
        SECRET_RULES,
        unit_pricer(
            SECRET_RULES, {"versions": "secretmanager.versions", "accesses": "secretmanager.accesses"}, adjust=_cached
        ),
    ),
]



PRICING = Pricing(
    family="gcp",
    offers=OFFERS,
    prices=price_file(Path(__file__).parent, "prices-gcp.json"),
    compute=ComputeOffer("Cloud Run (request-based)", _cloud_run),
    egress=_egress,
    clouds=("gcp",),
    refresh="overcast.providers.gcp.billing_catalog:refresh",
)
