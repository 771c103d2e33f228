"""The retries of both DynamoDB clients (botocore's standard mode, and the lite client's
own) and of unprocessed batch entries are counted as ``overcast.retries`` under the call
that made them, and the throttled call as ``overcast.throttles``: against the named fake
DynamoDB endpoint, since moto never throttles."""

from __future__ import annotations

import pytest
from fake_dynamodb import FakeDynamoDB
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overcast
from metrics_support import total
from overcast.errors import Throttled


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch, metric_reader: InMemoryMetricReader) -> InMemoryMetricReader:
    """Telemetry on, and the fake endpoint's credentials in the environment."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "fake",
        "AWS_SECRET_ACCESS_KEY": "fake",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return metric_reader


@pytest.mark.parametrize("client", ["lite", "botocore"])
def test_fake_throttled_get_counts_its_retries_and_one_throttle(reader: InMemoryMetricReader, client: str) -> None:
    fake = FakeDynamoDB(throttle=True)
    try:
        kv = overcast.open_kv(f"dynamodb://fake-table?endpoint={fake.url}&retries=3&client={client}", name="t")
        with pytest.raises(Throttled):
            kv.sync.get("k")
        assert fake.count("GetItem") == 3
        assert total(reader, "overcast.retries", upstream="dynamodb", operation="get", resource="t") == 2
        assert total(reader, "overcast.throttles", upstream="dynamodb", resource="t") == 1
    finally:
        fake.close()


@pytest.mark.parametrize("client", ["lite", "botocore"])
def test_fake_unprocessed_entries_count_a_retry(reader: InMemoryMetricReader, client: str) -> None:
    fake = FakeDynamoDB(unprocessed_first=True)
    try:
        kv = overcast.open_kv(f"dynamodb://fake-table?endpoint={fake.url}&client={client}", name="b")
        kv.sync.put_many({f"k{i}": {"i": i} for i in range(5)})
        assert fake.count("BatchWriteItem") == 2
        assert total(reader, "overcast.retries", operation="put_many", resource="b") == 1
    finally:
        fake.close()
