"""The botocore-free DynamoDB client (providers/aws/_lite.py): its signatures equal botocore's
own SigV4Auth, its retries and error mapping equal botocore's on a fake DynamoDB endpoint,
it is chosen only where it is sound, and the users example's first request on Lambda
imports no botocore. (The KV conformance suite runs on both clients: families/aws.py.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fake_dynamodb import FakeDynamoDB

import overcast
from overcast.errors import ConfigError, Conflict, InvalidArgument, Throttled, Unavailable
from overcast.providers.aws._lite import LiteDynamoDB, dynamodb_client
from overcast.providers.aws.dynamodb import DynamoDBKeyValueStore
from overcast.resources.url import ResourceURL
from tls_support import self_signed

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "users"
EVENT = ROOT / "tests" / "fixtures" / "aws" / "aws-lambda-go" / "events" / "apigw-v2-request-no-authorizer.json"


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIDFAKE", "AWS_SECRET_ACCESS_KEY": "fake/secret+key", "AWS_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "OVERCAST_DYNAMODB_CLIENT"):
        monkeypatch.delenv(name, raising=False)


# -- signatures --------------------------------------------------------------------------------

SIGNED = [
    # operation, params, region, endpoint, session token
    (
        "GetItem",
        {"TableName": "t", "Key": {"pk": {"S": "kv"}, "sk": {"S": "clé/ключ/鍵/🙂"}}, "ConsistentRead": True},
        "us-east-1",
        "https://dynamodb.us-east-1.amazonaws.com",
        None,
    ),
    (
        "PutItem",
        {"TableName": "users", "Item": {"pk": {"S": "kv"}, "sk": {"S": "naïve"}, "doc": {"S": '{"n":"Zoë"}'}}},
        "eu-west-1",
        "http://127.0.0.1:8000",
        "IQoJb3JpZ2luX2VjE/token+with=chars",
    ),
    (
        "Query",
        {
            "TableName": "t",
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": "kv"}, ":prefix": {"S": "ü/"}},
            "Limit": 11,
        },
        "ap-southeast-2",
        "https://dynamodb.ap-southeast-2.amazonaws.com",
        "FwoGZXIvYXdzEBYaDH",
    ),
    ("DescribeTable", {"TableName": "t"}, "cn-north-1", "https://dynamodb.cn-north-1.amazonaws.com.cn", None),
    ("BatchWriteItem", {"RequestItems": {}}, "us-west-2", "https://localhost:4566", "t"),
]


@pytest.mark.parametrize(("operation", "params", "region", "endpoint", "token"), SIGNED)
@pytest.mark.parametrize("ascii_body", [True, False])
def test_signature_equals_botocores_sigv4auth(
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    params: dict[str, Any],
    region: str,
    endpoint: str,
    token: str | None,
    ascii_body: bool,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    if token is None:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    body = json.dumps(params, ensure_ascii=ascii_body).encode()
    now = datetime(2026, 11, 26, 23, 59, 58)
    ours = LiteDynamoDB(endpoint, region).signed_headers(operation, body, amz_date=now.strftime("%Y%m%dT%H%M%SZ"))

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now)
    unsigned = {k: v for k, v in ours.items() if k not in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")}
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=unsigned)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    SigV4Auth(credentials, "dynamodb", region).add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")
    assert ("x-amz-security-token" in ours["Authorization"]) == (token is not None)


def test_non_ascii_keys_round_trip_through_moto(moto_server: Any) -> None:
    kv = overcast.open_kv(f"dynamodb://lite-{uuid.uuid4().hex[:8]}?client=lite")
    assert isinstance(kv.client, LiteDynamoDB)  # type: ignore[attr-defined]
    kv.sync.create()
    kv.sync.put("ключ", {"v": "値"})
    item = kv.sync.get("ключ")
    assert item is not None and item.value == {"v": "値"}


# -- retries and error mapping, against botocore on the same fake endpoint ----------------------

ITEM = {"pk": {"S": "kv"}, "sk": {"S": "k"}, "doc": {"S": '{"a":1}'}, "ver": {"S": "v1"}}
THROTTLED = (400, {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}, {})
INTERNAL = (500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "boom"}, {})
SCENARIOS: dict[str, tuple[list[tuple[int, Any, dict[str, str]]], str, int]] = {
    # name: (the fake's first answers, the outcome — "ok" or an error class —, requests made), retries=3
    "internal error once": ([INTERNAL], "ok", 2),
    "throttled once": ([THROTTLED], "ok", 2),
    "connection dropped once": ([(0, None, {})], "ok", 2),
    "a bad CRC32 once": ([(200, {"Item": ITEM}, {"x-amz-crc32": "1"})], "ok", 2),
    "a 503 page every time": ([(503, b"<html>Service Unavailable</html>", {})] * 3, "Unavailable", 3),
    "internal error every time": ([INTERNAL] * 3, "Unavailable", 3),
    "throttled every time": ([THROTTLED] * 3, "Throttled", 3),
    "bad credentials": (
        [(400, {"__type": "com.amazon.coral.service#UnrecognizedClientException", "message": "bad token"}, {})],
        "PermissionDenied",
        1,
    ),
    "validation": (
        [(400, {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad key"}, {})],
        "InvalidArgument",
        1,
    ),
    "an unmodeled 429": ([(429, b"", {})] * 3, "ProviderError", 3),
}


def _outcome(client: str, script: list[tuple[int, Any, dict[str, str]]]) -> tuple[str, int, str]:
    fake = FakeDynamoDB(script=script)
    fake.items["k"] = ITEM
    try:
        kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&retries=3&client={client}")
        assert isinstance(kv.client, LiteDynamoDB) == (client == "lite")
        try:
            item = kv.sync.get("k")
        except Exception as exc:
            return type(exc).__name__, len(fake.calls), str(exc)
        assert item is not None and item.value == {"a": 1}
        return "ok", len(fake.calls), ""
    finally:
        fake.close()


@pytest.mark.parametrize("name", SCENARIOS)
def test_fake_retries_and_errors_match_botocore(fake_env: None, name: str) -> None:
    script, outcome, calls = SCENARIOS[name]
    lite = _outcome("lite", script)
    boto = _outcome("botocore", script)
    assert lite[:2] == (outcome, calls), lite
    assert boto[:2] == (outcome, calls), boto
    if outcome != "ok":  # the same message, code included, after the resource's URL
        assert lite[2].split(": ", 1)[1] == boto[2].split(": ", 1)[1]


def test_fake_conflict_reports_the_current_version_as_botocore_does(fake_env: None) -> None:
    failed = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
        "Item": {**ITEM, "ver": {"S": "v7"}},
    }
    messages = []
    for client in ("lite", "botocore"):
        fake = FakeDynamoDB(script=[(400, failed, {})])
        try:
            kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&client={client}")
            with pytest.raises(Conflict) as info:
                kv.sync.put("k", {"a": 2}, if_version="v1")
            messages.append(str(info.value))
            assert len(fake.calls) == 1 and fake.calls[0][1]["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
        finally:
            fake.close()
    assert (
        messages[0].split(": ", 1)[1] == messages[1].split(": ", 1)[1] == "key 'k' is at version v7, not at version v1"
    )


@pytest.mark.parametrize("client", ["lite", "botocore"])
def test_a_closed_port_is_unavailable(fake_env: None, client: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint=http://127.0.0.1:{port}&retries=2&client={client}")
    with pytest.raises(Unavailable) as info:
        kv.sync.get("k")
    assert "fake-table" in str(info.value) and str(port) in str(info.value)


def test_throttled_retries_back_off_with_jitter(fake_env: None) -> None:
    """Throttling backs off on a 1 s scale (botocore's standard mode): 3 attempts sleep
    rand(0, 1) + rand(0, 2) s. Several runs are not all instant and never exceed 3 s."""
    fake = FakeDynamoDB(throttle=True)
    try:
        kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&retries=3&client=lite")
        spent = []
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(Throttled):
                kv.sync.get("k")
            spent.append(time.monotonic() - start)
        assert fake.count("GetItem") == 9
        assert max(spent) < 3.5 and sum(spent) > 0.05, spent
    finally:
        fake.close()


# -- choosing the client -----------------------------------------------------------------------


def test_the_client_is_lite_only_where_sound(fake_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = ResourceURL.parse("dynamodb://t")
    lite = dynamodb_client(url)
    assert lite is not None and lite.endpoint == "https://dynamodb.us-east-1.amazonaws.com"
    assert dynamodb_client(ResourceURL.parse("dynamodb://t?region=cn-north-1")).endpoint == (  # type: ignore[union-attr]
        "https://dynamodb.cn-north-1.amazonaws.com.cn"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert dynamodb_client(url).endpoint == "http://127.0.0.1:1"  # type: ignore[union-attr]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2")
    assert dynamodb_client(url).endpoint == "http://127.0.0.1:2"  # type: ignore[union-attr]
    assert dynamodb_client(ResourceURL.parse("dynamodb://t?endpoint=http://h:3")).endpoint == "http://h:3"  # type: ignore[union-attr]
    assert dynamodb_client(ResourceURL.parse("dynamodb://t?client=botocore")) is None
    monkeypatch.setenv("OVERCAST_DYNAMODB_CLIENT", "botocore")
    assert dynamodb_client(url) is None
    monkeypatch.delenv("OVERCAST_DYNAMODB_CLIENT")

    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert dynamodb_client(url) is None  # a config file may change what botocore does
    assert dynamodb_client(ResourceURL.parse("dynamodb://t?client=lite")) is not None
    monkeypatch.delenv("AWS_CONFIG_FILE")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert dynamodb_client(url) is None
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert dynamodb_client(url) is None  # the region would come from botocore's config chain
    assert dynamodb_client(ResourceURL.parse("dynamodb://t?region=eu-west-1")) is not None
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert dynamodb_client(ResourceURL.parse("dynamodb://t?region=eu-west-1")) is None  # credentials from a profile
    with pytest.raises(ConfigError) as info:
        dynamodb_client(ResourceURL.parse("dynamodb://t?region=eu-west-1&client=lite"))
    assert "AWS_SECRET_ACCESS_KEY" in str(info.value) and "dynamodb://t" in str(info.value)
    with pytest.raises(ConfigError) as info:
        dynamodb_client(ResourceURL.parse("dynamodb://t?client=boto"))
    assert "one of 'auto', 'botocore', 'lite'" in str(info.value)


def test_operations_beyond_the_providers_are_botocores(moto_server: Any) -> None:
    kv = overcast.open_kv(f"dynamodb://lite-{uuid.uuid4().hex[:8]}?client=lite")
    client: Any = kv.client  # type: ignore[attr-defined]
    assert isinstance(client, LiteDynamoDB)
    kv.sync.create()
    kv.sync.put("k", {"v": 1})
    client.put_item(TableName=kv.table, Item={"pk": {"S": "raw"}, "sk": {"S": "b"}, "blob": {"B": b"\x00\xff"}})
    scanned = client.scan(TableName=kv.table)  # type: ignore[attr-defined]
    assert sorted(i["sk"]["S"] for i in scanned["Items"]) == ["b", "k"]
    assert client.get_item(TableName=kv.table, Key={"pk": {"S": "raw"}, "sk": {"S": "b"}})["Item"]["blob"] == {
        "B": "AP8="  # the wire's base64, where botocore would give bytes
    }
    with pytest.raises(InvalidArgument):
        kv.sync.put("", {"v": 1})


# -- the users example on Lambda ---------------------------------------------------------------

FIRST_REQUEST = """
import json, sys
sys.path.insert(0, {folder!r})
import lambda_function
event = json.loads({event!r})
reply = lambda_function.handler(event, type("C", (), {{"aws_request_id": "first"}})())
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"botocore", "boto3", "s3transfer"}})
print(json.dumps({{"status": reply["statusCode"], "body": reply["body"], "loaded": loaded}}))
"""


@pytest.fixture
def provisioned_user(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    users = overcast.open_kv("dynamodb://users-demo-users")
    users.sync.create()
    uid = f"u-{uuid.uuid4().hex[:8]}"
    users.sync.put(uid, {"id": uid, "name": "Ada", "email": "ada@example.com"})
    yield uid
    users.sync.delete(uid)


def _first_request(uid: str, **env: str) -> dict[str, Any]:
    event = json.loads(EVENT.read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/users/{uid}"
    event["requestContext"]["http"]["method"] = "GET"
    event["rawQueryString"] = ""
    code = FIRST_REQUEST.format(folder=str(EXAMPLE), event=json.dumps(event))
    environ = {**os.environ, "OVERCAST_TARGET": "aws", "PYTHONDONTWRITEBYTECODE": "1", **env}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=EXAMPLE, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_users_examples_first_request_imports_no_botocore(provisioned_user: str) -> None:
    assert os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_REGION")  # as on Lambda
    first = _first_request(provisioned_user)
    assert first["status"] == 200 and json.loads(first["body"])["id"] == provisioned_user
    assert first["loaded"] == [], first
    switched = _first_request(provisioned_user, OVERCAST_DYNAMODB_CLIENT="botocore")
    assert switched["status"] == 200 and "botocore" in switched["loaded"]


# -- HTTPS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, and its key."""
    cert_file, key_file = self_signed(tmp_path_factory.mktemp("tls"))
    return str(cert_file), str(key_file)


def test_fake_https_trusts_aws_ca_bundle_as_botocore_does(
    fake_env: None, monkeypatch: pytest.MonkeyPatch, certificate: tuple[str, str]
) -> None:
    fake = FakeDynamoDB(tls=certificate)
    fake.items["k"] = ITEM
    try:
        monkeypatch.setenv("AWS_CA_BUNDLE", certificate[0])
        for client in ("lite", "botocore"):
            kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&retries=4&client={client}")
            item = kv.sync.get("k")
            assert item is not None and item.value == {"a": 1}
        assert fake.count("GetItem") == 2
        monkeypatch.delenv("AWS_CA_BUNDLE")  # certifi's bundle does not know this certificate
        refused = []
        for client in ("lite", "botocore"):
            kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&retries=2&client={client}")
            with pytest.raises(Exception) as info:
                kv.sync.get("k")
            refused.append(info.value)
        assert fake.count("GetItem") == 2
        assert type(refused[0]) is type(refused[1]), refused
        assert all("SSL validation failed" in str(error) for error in refused), refused
    finally:
        fake.close()


@pytest.mark.parametrize("client", ["lite", "botocore"])
def test_fake_keep_alive_reuses_a_connection_and_survives_its_drop(fake_env: None, client: str) -> None:
    """The server closes the first connection after answering, without saying so (as one
    dropping an idle connection does): the next call goes out on a new connection without
    costing an attempt, and the calls after it share that one."""
    fake = FakeDynamoDB(keep_alive=True, script=[(-1, None, {})])
    fake.items["k"] = ITEM
    try:
        kv = DynamoDBKeyValueStore(f"dynamodb://fake-table?endpoint={fake.url}&retries=1&client={client}")
        for call in range(4):
            item = kv.sync.get("k")
            assert item is not None and item.value == {"a": 1}
            if call == 0:
                time.sleep(0.2)  # idle: the server's close reaches the client before its next call
        assert fake.count("GetItem") == 4
        ports = [port for _, port in fake.peers]
        assert ports[0] != ports[1] and len(set(ports[1:])) == 1, ports
    finally:
        fake.close()
