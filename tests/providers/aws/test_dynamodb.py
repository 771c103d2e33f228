"""DynamoDB specifics the KV suite does not see: the key design (Query, never Scan), batch
sizes, unprocessed batch entries retried, throttling raised as Throttled, the item limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fake_dynamodb import FakeDynamoDB

import overcast
from overcast.errors import InvalidArgument, NotFound, Throttled
from overcast.providers.aws._lite import LiteDynamoDB
from overcast.providers.aws.dynamodb import DynamoDBKeyValueStore

CLIENTS = ["lite", "botocore"]  # the botocore-free client (_lite.py) and botocore's


@pytest.fixture(params=CLIENTS)
def store(request: pytest.FixtureRequest, moto_server: Any) -> Iterator[DynamoDBKeyValueStore]:
    kv = overcast.open_kv(f"dynamodb://t-{uuid.uuid4().hex[:10]}?partition=users&client={request.param}")
    assert isinstance(kv, DynamoDBKeyValueStore)
    kv.sync.create()
    yield kv
    kv.close()


def _operations(kv: DynamoDBKeyValueStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The operations ``kv`` sends from now on, with their parameters (the requests still go out)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    if isinstance(kv.client, LiteDynamoDB):
        send = kv.client.call

        def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
            seen.append((operation, dict(params)))
            return send(operation, params)

        monkeypatch.setattr(kv.client, "call", call)
        return seen

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, dict(params)))

    kv.client.meta.events.register("provide-client-params.dynamodb", record)
    return seen


def test_prefix_scan_is_a_query_on_one_partition(store: DynamoDBKeyValueStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.sync.put_many({f"user/{i:03}": {"i": i} for i in range(30)} | {"other": {}, "user": {}})
    seen = _operations(store, monkeypatch)
    keys = [item.key for item in store.sync.scan("user/")]
    assert keys == [f"user/{i:03}" for i in range(30)]
    page = store.sync.page("user/", limit=7)
    assert [i.key for i in page.items] == keys[:7] and page.cursor == keys[6]
    names = {name for name, _ in seen}
    assert names == {"Query"}, names
    assert all(params["KeyConditionExpression"].startswith("pk = :pk") for _, params in seen)
    raw = store.client.get_item(TableName=store.table, Key={"pk": {"S": "users"}, "sk": {"S": "user/001"}})["Item"]
    assert raw["pk"] == {"S": "users"} and raw["doc"] == {"S": '{"i":1}'}
    schema = store.client.describe_table(TableName=store.table)["Table"]["KeySchema"]
    assert schema == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    ttl = store.client.describe_time_to_live(TableName=store.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "ttl"


def test_two_stores_share_a_table_by_partition(store: DynamoDBKeyValueStore) -> None:
    other = DynamoDBKeyValueStore(f"dynamodb://{store.table}?partition=orders")
    store.sync.put("k", {"who": "users"})
    other.sync.put("k", {"who": "orders"})
    assert store.sync.get("k").value == {"who": "users"}  # type: ignore[union-attr]
    assert [i.value for i in other.sync.scan()] == [{"who": "orders"}]


def test_batches_stay_within_dynamodb_limits(store: DynamoDBKeyValueStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _operations(store, monkeypatch)
    versions = store.sync.put_many({f"k{i:03}": {"i": i} for i in range(60)})
    found = store.sync.get_many([f"k{i:03}" for i in range(250)])
    assert len(versions) == 60 and sorted(found) == sorted(versions)
    writes = [len(p["RequestItems"][store.table]) for name, p in seen if name == "BatchWriteItem"]
    reads = [len(p["RequestItems"][store.table]["Keys"]) for name, p in seen if name == "BatchGetItem"]
    assert writes == [25, 25, 10] and reads == [100, 100, 50]
    assert all(p["RequestItems"][store.table]["ConsistentRead"] for n, p in seen if n == "BatchGetItem")


def test_item_size_is_checked_before_the_call(store: DynamoDBKeyValueStore, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = store.limits.max_value_bytes
    assert limit < 400_000
    seen = _operations(store, monkeypatch)
    with pytest.raises(InvalidArgument) as info:
        store.sync.put("big", {"v": "x" * limit})
    assert "'big'" in str(info.value) and str(limit) in str(info.value)
    assert seen == []
    store.sync.put("k" * 1024, {"v": "x" * (limit - len('{"v":""}'))})  # the largest key and document fit


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_table_is_not_found(moto_server: Any, client: str) -> None:
    kv = DynamoDBKeyValueStore(f"dynamodb://never-created-table?client={client}")
    with pytest.raises(NotFound) as info:
        kv.sync.get("k")
    assert "never-created-table" in str(info.value) and "create" in str(info.value)


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": "fake", "AWS_SECRET_ACCESS_KEY": "fake", "AWS_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.mark.parametrize("client", CLIENTS)
def test_fake_unprocessed_batch_entries_are_retried(fake_env: None, client: str) -> None:
    fake = FakeDynamoDB(unprocessed_first=True)
    try:
        kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&client={client}")
        versions = kv.sync.put_many({f"k{i}": {"i": i} for i in range(5)})
        assert fake.count("BatchWriteItem") == 2 and sorted(fake.items) == sorted(versions)
        assert len(fake.calls[1][1]["RequestItems"]["fake-table"]) == 4  # only what was left
        found = kv.sync.get_many([f"k{i}" for i in range(5)])
        assert fake.count("BatchGetItem") == 2
        assert {k: item.value for k, item in found.items()} == {f"k{i}": {"i": i} for i in range(5)}
    finally:
        fake.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_fake_throttling_is_retried_then_raised_as_throttled(fake_env: None, client: str) -> None:
    fake = FakeDynamoDB(throttle=True)
    try:
        kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&retries=3&client={client}")
        with pytest.raises(Throttled) as info:
            kv.sync.get("k")
        assert "ProvisionedThroughputExceededException" in str(info.value)
        assert fake.count("GetItem") == 3
        assert info.value.__cause__ is not None
    finally:
        fake.close()
