"""AWS unit rules against moto: the requests each Overcast operation sends, counted by a
recording proxy in front of the real moto server, are the ones the rule prices; DynamoDB's
billed item size, computed from the item on the wire, is the size the rule rounds."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from counting_proxy import CountingProxy, Seen, counting
from drivers import DRIVERS, SCAN_PAGE
from rules_support import apis, offer

import overcast
from overcast.providers.aws.pricing import dynamodb_item_bytes, number_bytes


@pytest.fixture(scope="module")
def proxy(moto_server: Any) -> Iterator[CountingProxy]:
    with counting(moto_server.address) as recorder:
        yield recorder


def _header(seen: Seen, name: str) -> str | None:
    return next((v for k, v in seen.headers.items() if k.lower() == name.lower()), None)


def aws_api(seen: Seen) -> str:
    """The operation a request is, as AWS names it: the JSON protocol's target, the query
    protocol's Action, or S3's REST verb on a bucket or an object."""
    target = _header(seen, "X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[1]
    form = parse_qs(seen.body.decode(errors="replace")) if seen.method == "POST" else {}
    if "Action" in form:
        return form["Action"][0]
    parts = urlsplit(seen.path)
    query = parse_qs(parts.query, keep_blank_values=True)
    on_object = parts.path.strip("/").count("/") >= 1
    if seen.method == "GET" and not on_object:
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}[seen.method]


def _attribute_bytes(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return number_bytes(raw)
    if kind == "B":
        return len(base64.b64decode(raw))
    raise AssertionError(f"attribute type {kind} not expected in an Overcast item")


def wire_item_bytes(item: dict[str, dict[str, Any]]) -> int:
    """DynamoDB's item size: each attribute's name plus its value (numbers by significant digits)."""
    return sum(len(name.encode()) + _attribute_bytes(value) for name, value in item.items())


STORES = {
    "kv": ["dynamodb://t-{u}?client=lite&endpoint={e}", "dynamodb://t-{u}?client=botocore&endpoint={e}"],
    "bucket": ["s3://b-{u}?endpoint={e}"],
    "queue": ["sqs://q-{u}?endpoint={e}"],
    "topic": ["sns://t-{u}?endpoint={e}"],
}
OPS = {
    "kv": ["get", "put", "put_conditional", "put_absent", "delete", "scan"],
    "bucket": ["put", "get", "head", "delete", "list"],
    "queue": ["send", "receive", "ack"],
    "topic": ["publish"],
}
CASES = [(kind, url, op) for kind, urls in STORES.items() for url in urls for op in OPS[kind]]


@pytest.mark.parametrize(
    ("kind", "url", "op"), CASES, ids=[f"{u.split(':')[0]}-{u.split('client=')[-1][:4]}-{o}" for _, u, o in CASES]
)
def test_each_operation_sends_what_its_rule_prices(proxy: CountingProxy, kind: str, url: str, op: str) -> None:
    store = getattr(overcast, f"open_{kind}")(url.format(u=uuid.uuid4().hex[:10], e=proxy.endpoint))
    store.sync.create()
    rule = offer("aws", kind, store.location.scheme)
    size = 3000
    sent = DRIVERS[kind](store, op, size, proxy.take)
    assert [aws_api(s) for s in sent] == apis(rule.calls(op, size)), f"{url} {op}"
    store.close()


@pytest.mark.parametrize("size", [200, 3000, 9000, 20000])
@pytest.mark.parametrize("client", ["lite", "botocore"])
def test_dynamodb_units_from_the_item_on_the_wire(proxy: CountingProxy, client: str, size: int) -> None:
    """The rule's item size is the billed size of the item dynamodb.py writes (attribute names,
    the partition, a 32-byte key, the JSON text, the version), and rounds to the same units."""
    store = overcast.open_kv(f"dynamodb://t-{uuid.uuid4().hex[:10]}?client={client}&endpoint={proxy.endpoint}")
    store.sync.create()
    rule = offer("aws", "kv", "dynamodb")
    proxy.take()
    store.sync.put(uuid.uuid4().hex, {"d": "é" * (size // 2)})  # multibyte: sizes are UTF-8 bytes
    (put,) = proxy.take()
    item = json.loads(put.body)["Item"]
    wire = wire_item_bytes(item)
    doc_bytes = len(item["doc"]["S"].encode())
    estimated = dynamodb_item_bytes(doc_bytes)
    # the version's counter is 1 to 8 hex digits (the process's writes so far): the rule counts 8
    assert 0 <= estimated - wire <= 7, (estimated, wire)
    (write,) = rule.calls("put", doc_bytes)
    (read,) = rule.calls("get", doc_bytes)
    # the rule rounds the estimate (an upper bound) like DynamoDB rounds the item: the same units,
    # or one more where the item sits within the version's few bytes under a boundary
    assert write.units == {"wru": -(-estimated // 1024)} and 0 <= write.units["wru"] - -(-wire // 1024) <= 1
    assert read.units == {"rru": -(-estimated // 4096)} and 0 <= read.units["rru"] - -(-wire // 4096) <= 1
    scan = rule.calls("scan", doc_bytes)[0]
    assert scan.units == {"rru": -(-SCAN_PAGE * estimated // 4096)}
    store.close()


def test_a_secret_read_twice_within_its_cache_ttl_is_one_call(proxy: CountingProxy, moto_server: Any) -> None:
    prefix = f"app-{uuid.uuid4().hex[:8]}"
    store = overcast.open_secrets(f"secretsmanager://{prefix}?endpoint={proxy.endpoint}")
    store.client.create_secret(Name=f"{prefix}/db", SecretString="pw")
    rule = offer("aws", "secret", "secretsmanager")
    proxy.take()
    assert store.sync.get("db") == "pw" and store.sync.get("db") == "pw"
    assert [aws_api(s) for s in proxy.take()] == apis(rule.calls("get", 10))
