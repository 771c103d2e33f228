"""The engine: families found through their declarations only, replicas and their traffic."""

from __future__ import annotations

import json
import math
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


def test_a_replicated_store_costs_its_envelopes_log_replicator_and_transfer() -> None:
    """DynamoDB primary, Firestore replica, compute on AWS, no free tier, against the rates
    typed here (tests/cost/test_cost_figures.py cites their pages): each write is a
    conditional put of the document in its envelope on both members, a change-log entry put
    and deleted beside the primary, the replicator's log scans (once a second per instance,
    on each member) and the enveloped bytes shipped from AWS to Google Cloud."""
    from overcast.cost.model import REPLICATION_ENVELOPE, REPLICATION_LOG_ENTRY, SECONDS_PER_MONTH

    def dynamodb_item_bytes(document: int) -> int:  # pk+"kv", sk+32-byte key, doc+JSON, ver+20 (test_cost_figures)
        return 2 + 2 + 2 + 32 + 3 + document + 3 + 20

    workload = workload_from(
        {
            "workload": {"requests": 1e6, "instances": 2},
            "resources": {"users": {"get": 3, "put": 0.4, "delete": 0.1, "item_bytes": 4000, "stored_gb": 10,
                                    "replicas": ["gcp"]}},
        },
        {"users": "kv"},
    )  # fmt: skip
    plan = next(p for p in compare(workload, free_tier=False).clouds if p.cloud == "aws")
    (users,) = plan.placements
    got = {i.label: (i.quantity, i.cost) for i in users.items}
    writes, scans = 1e6 * 0.5, 2 * SECONDS_PER_MONTH  # a delete writes a tombstone: a write too
    enveloped = dynamodb_item_bytes(4000 + REPLICATION_ENVELOPE)
    logged = dynamodb_item_bytes(REPLICATION_LOG_ENTRY)
    wru, rru, fs_read, fs_write = 0.625 / 1e6, 0.125 / 1e6, 0.03 / 1e5, 0.09 / 1e5
    expected = {
        "wru": writes * math.ceil(enveloped / 1024) * wru,
        "rru": 3e6 * math.ceil(enveloped / 4096) * rru,
        "storage": 10 * 0.25,
        "change log: wru": 2 * writes * math.ceil(logged / 1024) * wru,  # the entry put, then deleted
        "change log: rru": scans * rru,  # an empty scan of the primary's log: one read
        # Firestore: a conditional put reads and writes; the replica's log is scanned too
        "replica gcp: reads": (writes + scans) * fs_read,
        "replica gcp: writes": writes * fs_write,
        "replica gcp: storage": 10 * 0.15,
        "replication aws→gcp": writes * (4000 + REPLICATION_ENVELOPE) / GIB * 0.09,
    }
    assert {label: cost for label, (_, cost) in got.items()} == pytest.approx(expected)
    assert got["change log: rru"][0] == scans and got["replica gcp: writes"][0] == writes


def test_the_replication_constants_are_the_resilience_layers() -> None:
    from overcast.cost.model import REPLICATION_ENVELOPE, REPLICATION_LOG_ENTRY, REPLICATOR_SCAN_SECONDS
    from overcast.resilience._envelope import OVERHEAD
    from overcast.resilience.replicator import Replicator

    assert REPLICATION_ENVELOPE == OVERHEAD
    assert Replicator.__init__.__kwdefaults__["idle"] == REPLICATOR_SCAN_SECONDS
    mark = {"c": "1765000000000000000-99999"}  # the largest clock the log holds
    assert len(json.dumps(mark).encode()) <= REPLICATION_LOG_ENTRY


def test_a_replica_on_the_compute_cloud_ships_nothing_across() -> None:
    """Firestore primary and DynamoDB replica with compute on AWS: the replicator writes the
    replica from AWS (no transfer), while the writes to the primary cross to Google Cloud."""
    workload = workload_from(
        {"workload": {"requests": 1e6}, "resources": {"users": {"put": 1, "item_bytes": 1000, "replicas": ["aws"]}}},
        {"users": "kv"},
    )
    result = compare(workload, free_tier=False)
    mix = result.mix
    assert mix is not None
    plan = next(p for p in result.clouds if p.cloud == "gcp")
    labels = {i.label for i in plan.placements[0].items}
    assert "replication gcp→aws" in labels and "replica aws: wru" in labels


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
