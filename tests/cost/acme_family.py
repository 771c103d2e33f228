"""A provider family of the tests' own ("acme"), declaring prices through ``Family.pricing``
exactly as a third-party family would: a compute, an egress rate and a key-value offer."""

from __future__ import annotations

from pathlib import Path

from overcast.cost.model import (
    Call,
    ComputeOffer,
    LineItem,
    Offer,
    PriceTable,
    Pricing,
    Workload,
    price_file,
    unit_pricer,
)
from overcast.resources.registry import Family

RULES = {"get": lambda size: [Call("Read", {"ops": 1})], "put": lambda size: [Call("Write", {"ops": 2})]}


def _compute(workload: Workload, table: PriceTable, free_tier: bool) -> list[LineItem]:
    return [LineItem.of("requests", workload.requests, table["acme.requests"], free_tier=free_tier)]


def _egress(gb: float, table: PriceTable, free_tier: bool) -> LineItem:
    return LineItem.of("internet egress (GB)", gb, table["acme.egress"], free_tier=free_tier)


PRICING = Pricing(
    family="acme",
    offers=[Offer("kv", "acmekv", "Acme KV", "acme", RULES, unit_pricer(RULES, {"ops": "acme.ops"}))],
    prices=price_file(Path(__file__).parent, "acme-prices.json"),
    compute=ComputeOffer("Acme Functions", _compute),
    egress=_egress,
    clouds=("acme",),
)

FAMILY = Family(
    name="acme", cloud="acme", schemes={"kv": {"acmekv": "acme_family:Nothing"}}, pricing="acme_family:PRICING"
)
