"""What a provider family states about its prices: dated price tables, unit rules, offers.

A family's pricing module (named by ``Family.pricing``) builds a :class:`Pricing` from
these pieces; the engine (:mod:`overcast.cost.engine`) knows nothing else about any
provider. Every figure is a :class:`Price` carrying the address it was read from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidArgument

__all__ = [
    "Call",
    "ComputeOffer",
    "LineItem",
    "Offer",
    "Price",
    "PriceTable",
    "Pricing",
    "ResourceUsage",
    "Rule",
    "Workload",
    "ceil_units",
    "load_prices",
]

#: A month as the clouds bill instance-hours (730 h) and as daily free quotas are summed (30 days).
HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = 30.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
GB = 1024**3  # the clouds' "GB" for storage and transfer is a GiB (2**30 bytes)
#: ``app.secret`` caches a value this long (SecretStore's default ``cache_ttl``): one read per instance per TTL
SECRET_CACHE_TTL = 300.0
#: A replicated KV store (``overcast.resilience``) keeps each document in an envelope with its
#: clock (at most this many bytes more), logs each write beside it in an entry of about
#: this size, and its replicator scans every member's log this often (seconds) per process.
REPLICATION_ENVELOPE = 80
REPLICATION_LOG_ENTRY = 64
REPLICATOR_SCAN_SECONDS = 1.0


@dataclass(frozen=True)
class Price:
    """``rate`` US dollars per ``per`` units of ``unit``, of which ``free`` a month cost nothing."""

    key: str
    rate: float
    per: float
    unit: str
    source: str
    free: float = 0.0
    note: str = ""
    #: False when the figure could not be confirmed against its source (``"confirmed": false``
    #: in the price file): the output marks it
    confirmed: bool = True

    def cost(self, quantity: float, *, free_tier: bool = True) -> float:
        billable = max(0.0, quantity - self.free) if free_tier else quantity
        return billable * self.rate / self.per


@dataclass(frozen=True)
class PriceTable:
    """One cloud's prices in one region, read from a dated file shipped in its family's folder."""

    cloud: str
    region: str
    retrieved: str
    currency: str
    prices: Mapping[str, Price]
    file: str

    def __getitem__(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise ConfigError(f"{self.file}: no price {key!r} for {self.cloud} region {self.region}") from None


def load_prices(path: Path, region: str | None) -> PriceTable:
    """The price table of ``region`` (the file's default region when ``None``) in ``path``."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    regions: dict[str, Any] = data["regions"]
    chosen = region or data["default_region"]
    if chosen not in regions:
        raise InvalidArgument(
            f"unknown region {chosen!r} for {data['cloud']}: prices are shipped for {', '.join(sorted(regions))} "
            f"({path.name}, retrieved {data['retrieved']})"
        )
    prices = {
        key: Price(
            key=key,
            rate=float(entry["rate"]),
            per=float(entry.get("per", 1)),
            unit=entry["unit"],
            source=entry["source"],
            free=float(entry.get("free", 0)),
            note=entry.get("note", ""),
            confirmed=bool(entry.get("confirmed", True)),
        )
        for key, entry in regions[chosen].items()
    }
    return PriceTable(data["cloud"], chosen, data["retrieved"], data.get("currency", "USD"), prices, path.name)


def ceil_units(size: float, unit: float) -> int:
    """``size`` in whole units of ``unit`` bytes, at least one (DynamoDB's 1 KB / 4 KB rounding)."""
    return max(1, math.ceil(size / unit))


@dataclass(frozen=True)
class Call:
    """One request a provider sends for an Overcast operation, and the billable units it consumes.

    ``api`` is the request as the service names it (``PutItem``, ``Commit``,
    ``PUT blob``); the unit-rule tests compare it with what reaches the emulator.
    """

    api: str
    units: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourceUsage:
    """What each request does to one resource: operations per request and sizes.

    ``ops`` maps an Overcast operation (``get``, ``put``, ``put_conditional``, ``delete``,
    ``scan``; ``send``, ``receive``, ``ack``; ``publish``; ``set``; ...) to how many times one
    request performs it on average; ``item_bytes`` is a document's, object's, message's or
    value's size; ``stored_gb`` the volume kept; ``replicas`` the clouds holding copies.
    """

    name: str
    kind: str
    ops: Mapping[str, float]
    item_bytes: int = 1024
    stored_gb: float = 0.0
    subscriptions: int = 1
    replicas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    """A month of traffic: requests, how long each runs and in how much memory, and the bytes
    each answers with (internet egress); ``instances`` is how many warm instances hold a
    cached secret at once, ``regions`` the region per cloud (else each price file's default)."""

    requests: float
    duration_ms: float = 100.0
    memory_mb: float = 512.0
    response_bytes: int = 2048
    instances: int = 1
    resources: Mapping[str, ResourceUsage] = field(default_factory=dict)
    regions: Mapping[str, str] = field(default_factory=dict)

    def monthly(self, usage: ResourceUsage, op: str) -> float:
        """How many times ``op`` runs on ``usage``'s resource in the month."""
        return self.requests * usage.ops.get(op, 0.0)

    def secret_reads(self, usage: ResourceUsage) -> float:
        """The reads of a secret that reach its store: at most one per instance per cache TTL."""
        return min(self.monthly(usage, "get"), self.instances * SECONDS_PER_MONTH / SECRET_CACHE_TTL)


@dataclass(frozen=True)
class LineItem:
    """One priced quantity: ``quantity`` of ``price.unit`` for ``cost`` dollars this month."""

    label: str
    quantity: float
    price: Price
    cost: float
    free_units: float = 0.0

    @classmethod
    def of(cls, label: str, quantity: float, price: Price, *, free_tier: bool) -> LineItem:
        free = min(quantity, price.free) if free_tier else 0.0
        return cls(label, quantity, price, price.cost(quantity, free_tier=free_tier), free)


#: An operation's billable calls, given the item size in bytes.
Rule = Callable[[int], Sequence[Call]]


@dataclass(frozen=True)
class Offer:
    """A service that can back a resource kind on a cloud (DynamoDB for ``kv`` on AWS).

    ``rules`` maps each Overcast operation to the calls it makes; ``price`` turns a month
    of usage into line items; ``cloud`` is where the data lives (transfer to compute on
    another cloud is counted by the engine).
    """

    kind: str
    scheme: str
    service: str
    cloud: str
    rules: Mapping[str, Rule]
    price: Callable[[Workload, ResourceUsage, PriceTable, bool], list[LineItem]]
    family: str = ""

    def calls(self, op: str, item_bytes: int) -> Sequence[Call]:
        rule = self.rules.get(op)
        if rule is None:
            raise InvalidArgument(f"{self.service}: no unit rule for operation {op!r}; known: {', '.join(self.rules)}")
        return rule(item_bytes)

    def units(self, workload: Workload, usage: ResourceUsage) -> dict[str, float]:
        """Billable units for the month."""
        return units_of(self.rules, workload, usage)


@dataclass(frozen=True)
class ComputeOffer:
    """The serverless compute of a cloud (Lambda, Cloud Run, Azure Functions)."""

    service: str
    price: Callable[[Workload, PriceTable, bool], list[LineItem]]


@dataclass(frozen=True)
class Pricing:
    """Everything a family prices: its offers, its compute and internet egress if a cloud,
    and where its price file is. ``clouds`` are the clouds its offers may be placed on."""

    family: str
    offers: Sequence[Offer]
    prices: Callable[[str, str | None], PriceTable]
    compute: ComputeOffer | None = None
    egress: Callable[[float, PriceTable, bool], LineItem] | None = None
    clouds: tuple[str, ...] = ()
    #: ``module:function`` reading current prices from the family's price API,
    #: ``(fetch, environment) -> Refreshed``; imported only for ``overcast cost --refresh``
    refresh: str | None = None


def one_call_each(*operations: str, upper: bool = False) -> dict[str, Rule]:
    """Rules for a service billed by the hour, whatever it is sent: each operation is one
    command (its name, upper-cased with ``upper``)."""

    def rule(name: str) -> Rule:
        return lambda size: [Call(name)]

    return {op: rule(op.upper() if upper else op) for op in operations}


def units_of(rules: Mapping[str, Rule], workload: Workload, usage: ResourceUsage) -> dict[str, float]:
    """Billable units for the month: each operation's calls (by ``rules``) times how often it runs."""
    total: dict[str, float] = {}
    for op, per_request in usage.ops.items():
        rule = rules.get(op)
        if rule is None:
            raise InvalidArgument(
                f"resource {usage.name!r}: no unit rule for operation {op!r}; known: {', '.join(rules)}"
            )
        count = workload.requests * per_request
        for call in rule(usage.item_bytes):
            for unit, amount in call.units.items():
                total[unit] = total.get(unit, 0.0) + amount * count
    return total


def unit_pricer(
    rules: Mapping[str, Rule],
    prices: Mapping[str, str],
    *,
    storage: str | None = None,
    adjust: Callable[[Workload, ResourceUsage, dict[str, float]], None] | None = None,
) -> Callable[[Workload, ResourceUsage, PriceTable, bool], list[LineItem]]:
    """A price function: the month's units by ``rules`` (then ``adjust``ed, e.g. for caching),
    each priced by the table entry ``prices[unit]``, and ``storage`` per GB-month stored."""

    def price(workload: Workload, usage: ResourceUsage, table: PriceTable, free_tier: bool) -> list[LineItem]:
        units = units_of(rules, workload, usage)
        if adjust is not None:
            adjust(workload, usage, units)
        items = [
            LineItem.of(unit, units[unit], table[key], free_tier=free_tier)
            for unit, key in prices.items()
            if units.get(unit, 0.0) > 0
        ]
        if storage is not None and usage.stored_gb > 0:
            items.append(LineItem.of("storage", usage.stored_gb, table[storage], free_tier=free_tier))
        return items

    return price


def price_file(folder: Path, name: str) -> Callable[[str, str | None], PriceTable]:
    """The ``prices`` of a :class:`Pricing`: ``name`` (a ``{cloud}`` template for a family
    hosted on several clouds) in ``folder``, for a cloud and region."""

    def prices(cloud: str, region: str | None) -> PriceTable:
        from .refresh import prices_dir  # a refreshed copy (overcast cost --refresh) wins

        refreshed = prices_dir() / name.format(cloud=cloud)
        path = refreshed if refreshed.is_file() else folder / name.format(cloud=cloud)
        if not path.is_file():
            raise InvalidArgument(f"no price file {path.name} for cloud {cloud!r}")
        return load_prices(path, region)

    return prices
