"""Azure Table storage KV on Azurite: what the conformance suite does not see (entity layout,
large documents split and reassembled, transactions, filters, credentials)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

import overcast
from overcast.errors import ConfigError, Conflict, InvalidArgument
from overcast.providers.azure.tables import (
    CHUNK_BYTES,
    AzureTableKeyValueStore,
    decode_row_key,
    encode_row_key,
)
from servers import Server


def _store(**options: str) -> AzureTableKeyValueStore:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    store = overcast.open_kv(f"azuretables://t{uuid.uuid4().hex[:12]}" + (f"?{query}" if query else ""))
    assert isinstance(store, AzureTableKeyValueStore)
    store.sync.create()
    return store


def _raw(store: AzureTableKeyValueStore) -> Any:
    service = TableServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    return service.get_table_client(store.table_name)


def test_row_keys_escape_what_table_storage_forbids() -> None:
    for key in ["a/b", "back\\slash", "#hash", "what?", "~7E", "tab\tnew\nline", "\x7f\x85", "ünï 🚀", "plain"]:
        row = encode_row_key(key)
        assert not any(c in row for c in "/\\#?") and all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in row)
        assert decode_row_key(row) == key
        assert encode_row_key(key + "x").startswith(row)
    assert encode_row_key("plain") == "plain"


def test_small_documents_are_one_string_property(azurite: Server) -> None:
    store = _store()
    version = store.sync.put("user/1", {"name": "Zoë"})
    entity = _raw(store).get_entity("o", "user~2F1")
    assert entity["v"] == '{"name":"Zoë"}' and entity.metadata["etag"] == version
    assert "n" not in entity and "x" not in entity


def test_large_documents_are_split_and_reassembled(azurite: Server) -> None:
    store = _store()
    value = {"text": "é" * 150_000, "n": list(range(1000))}
    store.sync.put("big", value)
    entity = _raw(store).get_entity("o", "big")
    count = entity["n"]
    assert "v" not in entity and count >= 5
    assert all(len(entity[f"b{i}"]) <= CHUNK_BYTES for i in range(count))
    item = store.sync.get("big")
    assert item is not None and item.value == value
    assert [i.key for i in store.sync.scan()] == ["big"] and store.sync.get_many(["big"])["big"].value == value
    store.sync.put("big", {"small": True})
    entity = _raw(store).get_entity("o", "big")
    assert entity["v"] == '{"small":true}' and "b0" not in entity and "n" not in entity


def test_documents_past_the_limit_are_refused_before_any_call(azurite: Server) -> None:
    store = _store()
    with pytest.raises(InvalidArgument, match=str(store.limits.max_value_bytes)):
        store.sync.put("k", {"v": "x" * store.limits.max_value_bytes})
    assert list(_raw(store).list_entities()) == []


def test_a_key_whose_row_key_is_too_long_is_refused(azurite: Server) -> None:
    store = _store()
    key = "/" * 400  # 400 bytes, under max_key_bytes, but 1,200 characters once escaped
    with pytest.raises(InvalidArgument, match="1024"):
        store.sync.put(key, {})
    with pytest.raises(InvalidArgument, match="RowKey"):
        store.sync.get(key)


def test_put_many_spans_several_transactions(azurite: Server) -> None:
    store = _store()
    items = {f"k{i:03}": {"i": i, "pad": "x" * 20_000} for i in range(230)}
    versions = store.sync.put_many(items)
    assert set(versions) == set(items)
    got = store.sync.get_many([*items, "absent"])
    assert set(got) == set(items)
    assert all(got[key].version == versions[key] and got[key].value == items[key] for key in items)


def test_put_many_is_atomic_per_transaction(azurite: Server) -> None:
    store = _store()
    store.sync.put("a", {"n": 1})
    # a transaction that Table storage refuses leaves none of its writes behind
    with pytest.raises(overcast.errors.ProviderError):
        store._commit([("a", store._entity("a", b'{"n":2}', None)), ("a", store._entity("a", b'{"n":3}', None))])
    item = store.sync.get("a")
    assert item is not None and item.value == {"n": 1}


def test_expired_items_are_filtered_and_replaced_by_if_absent(azurite: Server) -> None:
    store = _store()
    raw = _raw(store)
    past = datetime.now(UTC) - timedelta(minutes=1)
    raw.upsert_entity({"PartitionKey": "o", "RowKey": "old", "v": '{"a":1}', "x": past})
    store.sync.put("live", {"a": 2}, ttl=600)
    assert store.sync.get("old") is None
    assert [i.key for i in store.sync.scan()] == ["live"]
    assert list(store.sync.get_many(["old", "live"])) == ["live"]
    store.sync.put("old", {"a": 3}, if_absent=True)
    item = store.sync.get("old")
    assert item is not None and item.value == {"a": 3} and item.expires_at is None
    with pytest.raises(Conflict):
        store.sync.put("live", {"a": 4}, if_absent=True)


def test_delete_tells_whether_the_item_existed(azurite: Server) -> None:
    store = _store()
    assert store.sync.delete("nothing") is False
    with pytest.raises(Conflict):
        store.sync.delete("nothing", if_version='W/"datetime\'2020-01-01T00%3A00%3A00Z\'"')
    version = store.sync.put("k", {})
    assert store.sync.delete("k", if_version=version) is True
    assert store.sync.get("k") is None


def test_a_partition_option_keeps_stores_apart_in_one_table(azurite: Server) -> None:
    one = _store(partition="one")
    two = overcast.open_kv(f"azuretables://{one.table_name}?partition=two")
    one.sync.put("k", {"who": 1})
    two.sync.put("k", {"who": 2})
    assert [i.value for i in one.sync.scan()] == [{"who": 1}]
    assert [i.value for i in two.sync.scan()] == [{"who": 2}]


def test_scan_prefix_is_a_row_key_range(azurite: Server) -> None:
    store = _store()
    store.sync.put_many({"a/1": {}, "a/2": {}, "a0": {}, "a": {}, "b/1": {}, "a/~": {}})
    assert sorted(i.key for i in store.sync.scan("a/")) == ["a/1", "a/2", "a/~"]
    page = store.sync.page("a", limit=2)
    rest = store.sync.page("a", limit=10, cursor=page.cursor)
    assert len(page.items) == 2 and rest.cursor is None
    assert sorted(i.key for i in page.items + rest.items) == ["a", "a/1", "a/2", "a/~", "a0"]


def test_table_names_are_checked() -> None:
    for bad in ("ab", "has-dash", "1abc", "x" * 64):
        with pytest.raises(InvalidArgument, match="table name"):
            AzureTableKeyValueStore(f"azuretables://{bad}")


def test_credentials_come_from_the_environment_never_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        AzureTableKeyValueStore("azuretables://nocreds")
    with pytest.raises(ConfigError, match="MY_CONN"):
        AzureTableKeyValueStore("azuretables://nocreds?connection_env=MY_CONN")
    with pytest.raises(ConfigError, match="secret"):
        AzureTableKeyValueStore("azuretables://nocreds?account_key=abc")
    store = AzureTableKeyValueStore("azuretables://nocreds?account=myaccount")
    assert store._service.url.startswith("https://myaccount.table.core.windows.net")
