"""The comparison: an app's resources priced on every offer of every family, per cloud and as
the cheapest mix, with the transfer between clouds that a placement implies.

Families are found through the registry (``Family.pricing`` names each family's pricing
module); the engine lists none. Transfer model: compute runs on one cloud; a resource on
another cloud costs, besides its own line items, the bytes written to it at the compute
cloud's internet egress rate and the bytes read from it at its own cloud's rate; a replica
on another cloud costs the writes replayed there, its storage, and the written bytes
shipped from the primary's cloud at that cloud's egress rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..errors import ConfigError, InvalidArgument
from ..resources.registry import families, load_attribute
from .model import GB, LineItem, Offer, PriceTable, Pricing, ResourceUsage, Workload

__all__ = ["Comparison", "Placement", "compare", "pricings"]

#: Operations that carry the item's bytes to the service, and those that bring them back.
WRITES = frozenset({"put", "put_conditional", "put_absent", "send", "publish", "set"})
READS = frozenset({"get", "receive", "scan"})


@dataclass(frozen=True)
class Placement:
    """One resource on one offer, given where compute runs: its line items and total."""

    resource: str
    offer: Offer
    items: Sequence[LineItem]

    @property
    def total(self) -> float:
        return sum(item.cost for item in self.items)


@dataclass(frozen=True)
class CloudPlan:
    """Every resource on one cloud (its own services or a neutral family hosted there), with compute."""

    cloud: str
    compute: Sequence[LineItem]
    placements: Sequence[Placement]
    missing: Sequence[str] = ()

    @property
    def total(self) -> float:
        return sum(i.cost for i in self.compute) + sum(p.total for p in self.placements)


@dataclass(frozen=True)
class Comparison:
    """The whole answer: each single-cloud plan, the cheapest mix, and the saving between them."""

    clouds: Sequence[CloudPlan]
    mix: CloudPlan | None
    retrieved: Mapping[str, str] = field(default_factory=dict)

    @property
    def cheapest_single(self) -> CloudPlan | None:
        complete = [plan for plan in self.clouds if not plan.missing]
        return min(complete, key=lambda p: p.total, default=None)

    @property
    def saving(self) -> float:
        single = self.cheapest_single
        return single.total - self.mix.total if single and self.mix else 0.0


def pricings() -> list[Pricing]:
    """Every installed family's pricing, through the ``pricing`` of its declaration."""
    found: list[Pricing] = []
    for family in families().values():
        target = getattr(family, "pricing", None)
        if not target:
            continue
        pricing = load_attribute(target)
        if not isinstance(pricing, Pricing):
            raise ConfigError(f"family {family.name!r}: pricing {target!r} is no overcast.cost.model.Pricing")
        found.append(pricing)
    return found


class _Tables:
    """Price tables by (family, cloud), loaded once per comparison."""

    def __init__(self, all_pricings: Sequence[Pricing], regions: Mapping[str, str]) -> None:
        self._by_family = {p.family: p for p in all_pricings}
        self._regions = regions
        self._loaded: dict[tuple[str, str], PriceTable] = {}

    def table(self, family: str, cloud: str) -> PriceTable:
        key = (family, cloud)
        if key not in self._loaded:
            self._loaded[key] = self._by_family[family].prices(cloud, self._regions.get(cloud))
        return self._loaded[key]

    def egress(self, cloud: str) -> Pricing:
        pricing = next((p for p in self._by_family.values() if p.egress and cloud in p.clouds), None)
        if pricing is None:
            raise ConfigError(f"no installed family prices internet egress from cloud {cloud!r}")
        return pricing


def _transfer(tables: _Tables, source: str, gb: float, label: str, free_tier: bool) -> LineItem | None:
    """``gb`` leaving cloud ``source`` for another cloud, at ``source``'s internet egress rate
    (no free tier: the monthly free allowance is counted once, on the app's own egress)."""
    if gb <= 0:
        return None
    pricing = tables.egress(source)
    table = tables.table(pricing.family, source)
    assert pricing.egress is not None
    item = pricing.egress(gb, table, False)
    return replace(item, label=label)


def _bytes(workload: Workload, usage: ResourceUsage, ops: frozenset[str]) -> float:
    """GB a month carried by ``ops``; a topic's published messages come back once per subscription."""
    count = sum(workload.monthly(usage, op) for op in usage.ops if op in ops)
    if usage.kind == "topic" and ops is READS:
        count = workload.monthly(usage, "publish") * usage.subscriptions
    return count * usage.item_bytes / GB


def place(
    tables: _Tables,
    workload: Workload,
    usage: ResourceUsage,
    offer: Offer,
    compute_cloud: str,
    replica_offers: Mapping[str, Offer],
    free_tier: bool,
) -> Placement:
    """``usage``'s resource on ``offer`` with compute on ``compute_cloud``, transfer and replicas counted."""
    table = tables.table(offer.family, offer.cloud)
    items = list(offer.price(workload, usage, table, free_tier))
    if offer.cloud != compute_cloud:
        out = _transfer(
            tables, compute_cloud, _bytes(workload, usage, WRITES), f"transfer {compute_cloud}→{offer.cloud}", free_tier
        )
        back = _transfer(
            tables, offer.cloud, _bytes(workload, usage, READS), f"transfer {offer.cloud}→{compute_cloud}", free_tier
        )
        items += [i for i in (out, back) if i is not None]
    for cloud in usage.replicas:
        replica = replica_offers.get(cloud)
        if replica is None:
            raise InvalidArgument(
                f"resource {usage.name!r}: no {usage.kind} service is priced on replica cloud {cloud!r}"
            )
        writes = ResourceUsage(
            usage.name,
            usage.kind,
            {op: n for op, n in usage.ops.items() if op in WRITES | {"delete"}},
            usage.item_bytes,
            usage.stored_gb,
            usage.subscriptions,
        )
        rtable = tables.table(replica.family, replica.cloud)
        items += [
            replace(i, label=f"replica {cloud}: {i.label}") for i in replica.price(workload, writes, rtable, free_tier)
        ]
        if cloud != offer.cloud:
            shipped = _transfer(
                tables, offer.cloud, _bytes(workload, usage, WRITES), f"replication {offer.cloud}→{cloud}", free_tier
            )
            items += [shipped] if shipped else []
    return Placement(usage.name, offer, items)


def _native(offers: Iterable[Offer], kind: str, cloud: str) -> list[Offer]:
    return [o for o in offers if o.kind == kind and o.cloud == cloud]


def _plan(
    tables: _Tables,
    workload: Workload,
    offers: Sequence[Offer],
    compute: Pricing,
    cloud: str,
    free_tier: bool,
    anywhere: bool,
) -> CloudPlan:
    """Compute on ``cloud``; each resource on its cheapest offer there (or anywhere, for the mix)."""
    assert compute.compute is not None
    compute_items = list(compute.compute.price(workload, tables.table(compute.family, cloud), free_tier))
    egress_gb = workload.requests * workload.response_bytes / GB
    assert compute.egress is not None
    compute_items.append(compute.egress(egress_gb, tables.table(compute.family, cloud), free_tier))
    placements: list[Placement] = []
    missing: list[str] = []
    for usage in workload.resources.values():
        candidates = [o for o in offers if o.kind == usage.kind and (anywhere or o.cloud == cloud)]
        replicas = {c: _cheapest_native(tables, workload, usage, offers, c, free_tier) for c in usage.replicas}
        options = [
            place(tables, workload, usage, o, cloud, {c: r for c, r in replicas.items() if r}, free_tier)
            for o in candidates
        ]
        if not options:
            missing.append(usage.name)
            continue
        placements.append(min(options, key=lambda p: (p.total, p.offer.cloud != cloud, p.offer.service)))
    return CloudPlan(cloud, compute_items, placements, missing)


def _cheapest_native(
    tables: _Tables, workload: Workload, usage: ResourceUsage, offers: Sequence[Offer], cloud: str, free_tier: bool
) -> Offer | None:
    native = _native(offers, usage.kind, cloud)
    if not native:
        return None
    return min(
        native, key=lambda o: sum(i.cost for i in o.price(workload, usage, tables.table(o.family, o.cloud), free_tier))
    )


def compare(
    workload: Workload,
    *,
    free_tier: bool = True,
    clouds: Sequence[str] | None = None,
    all_pricings: Sequence[Pricing] | None = None,
) -> Comparison:
    """Price ``workload`` on every cloud with compute, and find the cheapest mix."""
    found = list(all_pricings) if all_pricings is not None else pricings()
    tables = _Tables(found, workload.regions)
    offers = [replace(o, family=p.family) for p in found for o in p.offers]
    computes = [p for p in found if p.compute is not None]
    for cloud in workload.regions:
        if not any(cloud in p.clouds for p in computes):
            raise InvalidArgument(
                f"region given for unknown cloud {cloud!r}; clouds: {', '.join(c for p in computes for c in p.clouds)}"
            )
    plans: list[CloudPlan] = []
    for pricing in computes:
        for cloud in pricing.clouds:
            if clouds is None or cloud in clouds:
                plans.append(_plan(tables, workload, offers, pricing, cloud, free_tier, anywhere=False))
    mixes = [
        _plan(tables, workload, offers, p, cloud, free_tier, anywhere=True)
        for p in computes
        for cloud in p.clouds
        if clouds is None or cloud in clouds
    ]
    mix = min((m for m in mixes if not m.missing), key=lambda m: m.total, default=None)
    retrieved = {f"{family}/{cloud}": t.retrieved for (family, cloud), t in tables._loaded.items()}
    return Comparison(plans, mix, retrieved)
