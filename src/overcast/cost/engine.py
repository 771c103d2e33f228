"""The comparison: an app's resources priced on every offer of every family, per cloud and as
the cheapest mix, with the transfer between clouds that a placement implies.

Families are found through the registry (``Family.pricing`` names each family's pricing
module); the engine lists none. Transfer model: compute runs on one cloud; a resource on
another cloud costs, besides its own line items, the bytes written to it at the compute
cloud's internet egress rate and the bytes read from it at its own cloud's rate.

A replicated KV store is priced as ``overcast.resilience`` runs it (ack from the primary):
every write (a put of any kind or a delete, which leaves a tombstone) is a conditional put
of the document in its envelope on the primary and on each replica; beside it on the
primary, a change-log entry is put and, once the replicator has shipped the write, deleted;
the replicator, running with the compute, scans every member's log once a second per warm
instance (an empty scan billed as the minimum one read, priced as a get of a log entry);
the written bytes go from the compute's cloud to each replica's. Reads go to the primary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..errors import ConfigError, InvalidArgument
from ..resources.registry import families, load_attribute
from .model import (
    GB,
    REPLICATION_ENVELOPE,
    REPLICATION_LOG_ENTRY,
    REPLICATOR_SCAN_SECONDS,
    SECONDS_PER_MONTH,
    LineItem,
    Offer,
    Price,
    PriceTable,
    Pricing,
    ResourceUsage,
    Workload,
)

__all__ = ["CloudPlan", "Comparison", "Placement", "compare", "configured", "pricings"]

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

    def retrieved(self) -> dict[str, str]:
        """When each price table used was read, by ``family/cloud``."""
        return {f"{family}/{cloud}": t.retrieved for (family, cloud), t in self._loaded.items()}

    def egress(self, cloud: str) -> Pricing:
        pricing = next((p for p in self._by_family.values() if p.egress and cloud in p.clouds), None)
        if pricing is None:
            raise ConfigError(f"no installed family prices internet egress from cloud {cloud!r}")
        return pricing


def _transfer(tables: _Tables, source: str, gb: float, label: str, free_tier: bool) -> LineItem | None:
    """``gb`` leaving cloud ``source`` for another cloud, at ``source``'s internet egress rate.
    Priced whole here; the plan then shares the month's free allowance among all its items."""
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
    if usage.kind == "secret" and ops is READS:  # cached: only the reads that reach the store
        count = workload.secret_reads(usage)
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
    replicated = bool(usage.replicas) and usage.kind == "kv"
    own = _replicated(workload, usage)[0] if replicated else usage
    items = list(offer.price(workload, own, table, free_tier))
    if offer.cloud != compute_cloud:
        out = _transfer(
            tables, compute_cloud, _bytes(workload, own, WRITES), f"transfer {compute_cloud}→{offer.cloud}", free_tier
        )
        back = _transfer(
            tables, offer.cloud, _bytes(workload, usage, READS), f"transfer {offer.cloud}→{compute_cloud}", free_tier
        )
        items += [i for i in (out, back) if i is not None]
    if replicated:
        log = _replicated(workload, usage)[2]
        items += [replace(i, label=f"change log: {i.label}") for i in offer.price(workload, log, table, free_tier)]
    for cloud in usage.replicas:
        items += _replica(tables, workload, usage, offer, compute_cloud, cloud, replica_offers, free_tier)
    return Placement(usage.name, offer, items)


def _replicated(workload: Workload, usage: ResourceUsage) -> tuple[ResourceUsage, ResourceUsage, ResourceUsage]:
    """A replicated KV store's (primary, each replica, the primary's change log) usage; see the module."""
    writes = sum(n for op, n in usage.ops.items() if op in WRITES | {"delete"})
    reads = {op: n for op, n in usage.ops.items() if op not in WRITES | {"delete"}}
    scans = workload.instances * SECONDS_PER_MONTH / REPLICATOR_SCAN_SECONDS / workload.requests
    size = usage.item_bytes + REPLICATION_ENVELOPE
    put = {"put_conditional": writes} if writes else {}
    primary = replace(usage, ops={**reads, **put}, item_bytes=size)
    replica = replace(usage, ops={**put, "get": scans}, item_bytes=size)
    log = replace(usage, ops={"put": writes, "delete": writes, "get": scans}, item_bytes=REPLICATION_LOG_ENTRY)
    return primary, replica, replace(log, stored_gb=0.0, ops={k: v for k, v in log.ops.items() if v})


def _replica(
    tables: _Tables,
    workload: Workload,
    usage: ResourceUsage,
    offer: Offer,
    compute_cloud: str,
    cloud: str,
    replica_offers: Mapping[str, Offer],
    free_tier: bool,
) -> list[LineItem]:
    """A copy of ``usage``'s resource on ``cloud``: the writes replayed there, its storage (and, for
    a replicated KV store, its log's scans), and the written bytes shipped to it from the compute."""
    replica = replica_offers.get(cloud)
    if replica is None:
        raise InvalidArgument(f"resource {usage.name!r}: no {usage.kind} service is priced on replica cloud {cloud!r}")
    if usage.kind == "kv":
        copy = _replicated(workload, usage)[1]
        source = compute_cloud
    else:
        copy = replace(usage, ops={op: n for op, n in usage.ops.items() if op in WRITES | {"delete"}})
        source = offer.cloud
    rtable = tables.table(replica.family, replica.cloud)
    items = [replace(i, label=f"replica {cloud}: {i.label}") for i in replica.price(workload, copy, rtable, free_tier)]
    if cloud != source:
        shipped = _transfer(tables, source, _bytes(workload, copy, WRITES), f"replication {source}→{cloud}", free_tier)
        items += [shipped] if shipped else []
    return items


def _native(offers: Iterable[Offer], kind: str, cloud: str) -> list[Offer]:
    return [o for o in offers if o.kind == kind and o.cloud == cloud]


def _plan(
    tables: _Tables,
    workload: Workload,
    offers: Sequence[Offer],
    compute: Pricing,
    cloud: str,
    free_tier: bool,
    allowed: Callable[[ResourceUsage, Offer], bool],
) -> CloudPlan:
    """Compute on ``cloud``; each resource on the cheapest of the offers ``allowed`` for it."""
    assert compute.compute is not None
    compute_items = list(compute.compute.price(workload, tables.table(compute.family, cloud), free_tier))
    egress_gb = workload.requests * workload.response_bytes / GB
    assert compute.egress is not None
    compute_items.append(compute.egress(egress_gb, tables.table(compute.family, cloud), free_tier))
    placements: list[Placement] = []
    missing: list[str] = []
    for usage in workload.resources.values():
        candidates = [o for o in offers if o.kind == usage.kind and allowed(usage, o)]
        replicas = {c: _cheapest_native(tables, workload, usage, offers, c, free_tier) for c in usage.replicas}
        options = [
            place(tables, workload, usage, o, cloud, {c: r for c, r in replicas.items() if r}, free_tier)
            for o in candidates
        ]
        if not options:
            missing.append(usage.name)
            continue
        placements.append(min(options, key=lambda p: (p.total, p.offer.cloud != cloud, p.offer.service)))
    if free_tier:
        compute_items, placements = _share_free(compute_items, placements)
    return CloudPlan(cloud, compute_items, placements, missing)


def _share_free(compute: list[LineItem], placements: list[Placement]) -> tuple[list[LineItem], list[Placement]]:
    """Free tiers are a month's allowance per account, not per resource: each price's free
    units go to its line items in order (compute first), so two queues share SQS's million."""
    left: dict[Price, float] = {}

    def share(item: LineItem) -> LineItem:
        free = min(item.quantity, left.setdefault(item.price, item.price.free))
        left[item.price] -= free
        return replace(item, free_units=free, cost=(item.quantity - free) * item.price.rate / item.price.per)

    shared = [share(i) for i in compute]
    return shared, [replace(p, items=[share(i) for i in p.items]) for p in placements]


def _cheapest_native(
    tables: _Tables, workload: Workload, usage: ResourceUsage, offers: Sequence[Offer], cloud: str, free_tier: bool
) -> Offer | None:
    native = _native(offers, usage.kind, cloud)
    if not native:
        return None
    return min(
        native, key=lambda o: sum(i.cost for i in o.price(workload, usage, tables.table(o.family, o.cloud), free_tier))
    )


def _setup(workload: Workload, all_pricings: Sequence[Pricing] | None) -> tuple[_Tables, list[Offer], list[Pricing]]:
    found = list(all_pricings) if all_pricings is not None else pricings()
    offers = [replace(o, family=p.family) for p in found for o in p.offers]
    computes = [p for p in found if p.compute is not None]
    known = [c for p in computes for c in p.clouds]
    for cloud in workload.regions:
        if cloud not in known:
            raise InvalidArgument(f"region given for unknown cloud {cloud!r}; clouds: {', '.join(known)}")
    return _Tables(found, workload.regions), offers, computes


def _on(cloud: str) -> Callable[[ResourceUsage, Offer], bool]:
    return lambda usage, offer: offer.cloud == cloud


def _anywhere(usage: ResourceUsage, offer: Offer) -> bool:
    return True


def compare(
    workload: Workload,
    *,
    free_tier: bool = True,
    clouds: Sequence[str] | None = None,
    all_pricings: Sequence[Pricing] | None = None,
) -> Comparison:
    """Price ``workload`` on every cloud with compute, and find the cheapest mix."""
    tables, offers, computes = _setup(workload, all_pricings)
    chosen = [(p, cloud) for p in computes for cloud in p.clouds if clouds is None or cloud in clouds]
    plans = [_plan(tables, workload, offers, p, cloud, free_tier, _on(cloud)) for p, cloud in chosen]
    mixes = [_plan(tables, workload, offers, p, cloud, free_tier, _anywhere) for p, cloud in chosen]
    mix = min((m for m in mixes if not m.missing), key=lambda m: m.total, default=None)
    return Comparison(plans, mix, tables.retrieved())


def configured(
    workload: Workload,
    schemes: Mapping[str, str],
    cloud: str,
    *,
    free_tier: bool = True,
    all_pricings: Sequence[Pricing] | None = None,
) -> CloudPlan:
    """The app as a target configures it: compute on ``cloud``, each resource on the service
    of its URL scheme (``schemes``: name → scheme); one with no priced service is ``missing``."""
    tables, offers, computes = _setup(workload, all_pricings)
    compute = next((p for p in computes if cloud in p.clouds), None)
    if compute is None:
        raise InvalidArgument(f"no installed family prices compute on cloud {cloud!r}")

    def allowed(usage: ResourceUsage, offer: Offer) -> bool:
        if offer.scheme != schemes.get(usage.name):
            return False
        same = [o for o in offers if o.kind == usage.kind and o.scheme == offer.scheme and o.cloud == cloud]
        return offer.cloud == cloud or not same  # a neutral service runs on the target's cloud when it can

    return _plan(tables, workload, offers, compute, cloud, free_tier, allowed)
