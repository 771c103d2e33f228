"""The engine: families found through their declarations only, replicas and their traffic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from acme_family import FAMILY

from overcast.cost import compare, workload_from
from overcast.errors import InvalidArgument
from overcast.resources import registry

GIB = 2**30


@pytest.fixture
def acme() -> Iterator[None]:
    registry.families()  # the installed families first, so acme is added beside them
    registry.register_family(FAMILY)
    yield
    registry._families.pop("acme", None)
    registry._registry.pop(("kv", "acmekv"), None)


def test_a_family_is_priced_through_its_declaration_alone(acme: None) -> None:
    """A family the engine has never heard of, declared with Family.pricing, is a cloud of the
    comparison: its compute, its offers for the app's resources, its own rules."""
    workload = workload_from(
        {"workload": {"requests": 1e6, "response_bytes": 0}, "resources": {"users": {"get": 1, "put": 1}}},
        {"users": "kv"},
    )
    plans = {plan.cloud: plan for plan in compare(workload).clouds}
    assert {"acme", "aws", "gcp", "azure"} <= set(plans)
    acme_plan = plans["acme"]
    (placement,) = acme_plan.placements
    assert placement.offer.service == "Acme KV"
    assert placement.total == pytest.approx((1e6 * 1 + 1e6 * 2) * 0.10 / 1e6)  # a put is two operations
    assert acme_plan.total == pytest.approx(1.0 + 0.3)


def test_without_the_declaration_the_family_is_not_priced() -> None:
    workload = workload_from({"workload": {"requests": 1e6}}, {})
    assert "acme" not in {plan.cloud for plan in compare(workload).clouds}


def test_a_replica_on_another_cloud_costs_its_writes_storage_and_the_shipped_bytes() -> None:
    workload = workload_from(
        {
            "workload": {"requests": 1e6},
            "resources": {"users": {"get": 3, "put": 0.5, "item_bytes": 4000, "stored_gb": 10, "replicas": ["gcp"]}},
        },
        {"users": "kv"},
    )
    plan = next(p for p in compare(workload, free_tier=False).clouds if p.cloud == "aws")
    (users,) = plan.placements
    labels = {i.label: i for i in users.items}
    # the replica writes what the primary writes (no reads) and stores what it stores
    assert labels["replica gcp: writes"].quantity == 1e6 * 0.5
    assert "replica gcp: reads" not in labels
    assert labels["replica gcp: storage"].quantity == 10
    shipped = labels["replication aws→gcp"]
    assert shipped.quantity == pytest.approx(1e6 * 0.5 * 4000 / GIB)
    assert shipped.cost == pytest.approx(shipped.quantity * 0.09)  # AWS's internet egress rate


def test_a_replica_on_a_cloud_without_the_kind_is_refused() -> None:
    workload = workload_from(
        {"workload": {"requests": 1}, "resources": {"users": {"get": 1, "replicas": ["nowhere"]}}}, {"users": "kv"}
    )
    with pytest.raises(InvalidArgument, match="no kv service is priced on replica cloud 'nowhere'"):
        compare(workload)


def test_a_secret_is_read_once_per_instance_per_cache_ttl_as_secret_stores_do() -> None:
    """The model's cache TTL is the secret stores' own default, and caps both the priced reads
    and the bytes a secret on another cloud sends back."""
    from overcast.cost.model import SECONDS_PER_MONTH, SECRET_CACHE_TTL
    from overcast.resources.secrets import SecretStore

    assert SecretStore.default_cache_ttl == SECRET_CACHE_TTL
    workload = workload_from(
        {"workload": {"requests": 1e7, "instances": 3}, "resources": {"key": {"get": 2}}}, {"key": "secret"}
    )
    misses = 3 * SECONDS_PER_MONTH / SECRET_CACHE_TTL
    assert workload.secret_reads(workload.resources["key"]) == misses
    plan = next(p for p in compare(workload, free_tier=False).clouds if p.cloud == "aws")
    calls = next(i for i in plan.placements[0].items if i.label == "api_calls")
    assert calls.quantity == misses
