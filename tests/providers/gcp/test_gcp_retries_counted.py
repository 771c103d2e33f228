"""google-api-core's retry machinery, as the Cloud Storage provider uses it, counts each
retry it makes as ``overcast.retries`` and keeps Storage's conditional policy's condition.
(No emulator fails on demand: the policy runs here on a call that fails, then succeeds.)"""

from __future__ import annotations

import pytest
from google.api_core import exceptions as google_exceptions
from google.cloud.storage.retry import DEFAULT_RETRY, DEFAULT_RETRY_IF_GENERATION_SPECIFIED
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from metrics_support import total
from overcast.providers.gcp._retries import counted


def _flaky(failures: int, error: Exception) -> object:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error
        return "done"

    return call


def test_retries_of_a_flaky_call_are_counted(metric_reader: InMemoryMetricReader) -> None:
    policy = counted(DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.02), "gcs")
    call = _flaky(2, google_exceptions.ServiceUnavailable("busy"))
    assert policy(call)() == "done"
    assert total(metric_reader, "overcast.retries", upstream="gcs") == 2


def test_an_error_the_policy_does_not_retry_is_not_counted(metric_reader: InMemoryMetricReader) -> None:
    policy = counted(DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.02), "gcs")
    with pytest.raises(google_exceptions.PreconditionFailed):
        policy(_flaky(1, google_exceptions.PreconditionFailed("moved")))()
    assert total(metric_reader, "overcast.retries", upstream="gcs") == 0


def test_the_conditional_policy_keeps_its_condition(metric_reader: InMemoryMetricReader) -> None:
    policy = counted(DEFAULT_RETRY_IF_GENERATION_SPECIFIED, "gcs")
    assert policy.get_retry_policy_if_conditions_met(query_params={}) is None
    inner = policy.get_retry_policy_if_conditions_met(query_params={"ifGenerationMatch": 0})
    assert inner is not None
    call = _flaky(1, google_exceptions.TooManyRequests("slow down"))
    assert inner.with_delay(initial=0.01, maximum=0.02)(call)() == "done"
    assert total(metric_reader, "overcast.retries", upstream="gcs") == 1


def test_firestore_and_pubsub_clients_count_their_default_retries(
    firestore_emulator: object, pubsub_emulator: object, metric_reader: InMemoryMetricReader
) -> None:
    import asyncio
    import uuid

    import overcast

    kv = overcast.open_kv(f"firestore://retries-{uuid.uuid4().hex[:6]}", name="fs")
    kv.sync.put("k", {"v": 1})  # through the emulator: no retry needed, none counted
    assert kv.sync.get("k") is not None
    assert total(metric_reader, "overcast.retries", upstream="firestore") == 0

    from overcast.providers.gcp import pubsub

    async def async_methods() -> list[object]:
        await kv.get("k")
        api = kv.async_client()._firestore_api  # type: ignore[attr-defined]
        return list(api._client._transport._wrapped_methods.values())

    sync_api = kv.client._firestore_api  # type: ignore[attr-defined]
    publisher = pubsub._client("publisher")
    for methods in (
        list(sync_api._transport._wrapped_methods.values()),
        asyncio.run(async_methods()),
        list(publisher._transport._wrapped_methods.values()),
    ):
        policies = [m._retry for m in methods if getattr(m, "_retry", None) is not None]
        assert policies and all(getattr(p, "_overcast_counted", False) for p in policies)

    # The sync client's GetDocument policy, on a call that fails twice with a retryable error:
    policy = sync_api._transport._wrapped_methods[sync_api._transport.get_document]._retry
    call = _flaky(2, google_exceptions.ServiceUnavailable("busy"))
    assert policy.with_delay(initial=0.01, maximum=0.02)(call)() == "done"
    assert total(metric_reader, "overcast.retries", upstream="firestore") == 2
