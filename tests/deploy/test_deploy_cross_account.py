"""Resources declared by ARN (``kv.x = { arn = "...", existing = true }``) are reached in
the ARN's account, not in the function's own: a DynamoDB table by its ARN in ``TableName``
(DynamoDB's table-name overloading, how another account's table is reached through its
resource-based policy), a topic by its ARN (SQS's ``QueueOwnerAWSAccountId`` is tested in
tests/providers/aws/test_s3_sqs_sns.py). On moto's server.

moto 5.2 takes a table's ARN for ``TableName`` but looks it up among the caller's own
account's tables only: another account's table is not found there, so the other-account
tests check what the provider sends and that it never falls back to the own account's
table of the same name; the same-account tests run every operation through the ARN."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

import overcast
from overcast.deploy.plan import make_plan
from overcast.errors import ConfigError, NotFound, ProviderError
from overcast.loader import load_app
from overcast.providers.aws.arns import partition_of, table_arn, url_of_arn

SHOP = Path(__file__).resolve().parent / "apps" / "shop"

MOTO_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "us-east-1"


def _key_schema() -> dict[str, Any]:
    return {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _other_account() -> dict[str, str]:
    """Credentials of a role in OTHER_ACCOUNT (moto's STS hands out keys of the role's account)."""
    found = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/owner", RoleSessionName="owner"
    )["Credentials"]
    return {
        "region_name": REGION,
        "aws_access_key_id": found["AccessKeyId"],
        "aws_secret_access_key": found["SecretAccessKey"],
        "aws_session_token": found["SessionToken"],
    }


def _store(arn: str, client: str) -> Any:
    kind, url = url_of_arn(arn) or ("", "")
    assert kind == "kv"
    return overcast.open_kv(f"{url}&client={client}")


@pytest.mark.parametrize("client", ["lite", "botocore"])
def test_a_table_declared_by_arn_is_reached_by_its_arn_in_every_operation(moto_server: Any, client: str) -> None:
    name = f"arn-{uuid.uuid4().hex[:10]}"
    boto3.client("dynamodb", region_name=REGION).create_table(TableName=name, **_key_schema())
    arn = f"arn:aws:dynamodb:{REGION}:{MOTO_ACCOUNT}:table/{name}"
    store = _store(arn, client)
    assert store.table == arn and store.table_name == name
    kv = store.sync
    kv.put("a", {"n": 1})
    kv.put_many({"b": {"n": 2}, "c": {"n": 3}})
    assert kv.get("a").value == {"n": 1}
    many = kv.get_many(["a", "b", "c"])
    assert {k: v.value for k, v in many.items()} == {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}}
    assert [item.key for item in kv.scan()] == ["a", "b", "c"]
    kv.delete("b")
    assert kv.get("b") is None
    plain = boto3.client("dynamodb", region_name=REGION).query(
        TableName=name, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "kv"}}
    )
    assert sorted(item["sk"]["S"] for item in plain["Items"]) == ["a", "c"]  # the same table, by name


def test_another_accounts_table_is_named_by_its_arn_never_by_its_name(moto_server: Any) -> None:
    """The bug this fixes: by name, the request resolved in the function's own account, so a
    table of the same name there was read instead of the other account's."""
    name = f"shared-{uuid.uuid4().hex[:10]}"
    for credentials in ({"region_name": REGION}, _other_account()):
        tables = boto3.client("dynamodb", **credentials)
        tables.create_table(TableName=name, **_key_schema())
        tables.put_item(TableName=name, Item={"pk": {"S": "kv"}, "sk": {"S": "k"}, "doc": {"S": "{}"}})
    arn = f"arn:aws:dynamodb:{REGION}:{OTHER_ACCOUNT}:table/{name}"
    sent: list[str] = []
    botocore_store = _store(arn, "botocore")
    botocore_store.client.meta.events.register(
        "provide-client-params.dynamodb.GetItem", lambda params, **_: sent.append(params["TableName"])
    )
    for store in (_store(arn, "lite"), botocore_store):
        with pytest.raises((NotFound, ProviderError), match=re.escape(arn)):  # moto: not in the caller's account
            store.sync.get("k")
    assert sent == [arn]  # what botocore's client sent; the lite client was given the same TableName


def test_the_table_arn_unit_level() -> None:
    """Unit-level (no server): the ARN the provider sends, its partition, and bad input."""
    assert url_of_arn("arn:aws:dynamodb:eu-west-1:210987654321:table/legacy") == (
        "kv",
        "dynamodb://legacy?region=eu-west-1&account=210987654321",
    )
    store = overcast.open_kv("dynamodb://legacy?region=cn-north-1&account=210987654321")
    assert store.table == "arn:aws-cn:dynamodb:cn-north-1:210987654321:table/legacy"
    assert overcast.open_kv("dynamodb://legacy?region=eu-west-1").table == "legacy"  # declared by name: the name
    assert table_arn("us-gov-west-1", OTHER_ACCOUNT, "t").startswith("arn:aws-us-gov:dynamodb:us-gov-west-1:")
    regions = ("eu-west-1", "cn-northwest-1", "us-gov-east-1")
    assert [partition_of(region) for region in regions] == ["aws", "aws-cn", "aws-us-gov"]
    with pytest.raises(ConfigError, match=r"account 'acme' must be a 12-digit AWS account ID"):
        overcast.open_kv("dynamodb://legacy?region=eu-west-1&account=acme")


def test_another_accounts_topic_gets_what_the_function_publishes(moto_server: Any) -> None:
    """A topic declared by ARN is published to by that ARN: the other account's subscriber gets it."""
    other = _other_account()
    name = f"events-{uuid.uuid4().hex[:10]}"
    topic_arn = boto3.client("sns", **other).create_topic(Name=name)["TopicArn"]
    queues = boto3.client("sqs", **other)
    queue_url = queues.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = queues.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns", **other).subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    kind, url = url_of_arn(topic_arn) or ("", "")
    topic = overcast.open_topic(url)
    assert (kind, topic.topic_arn()) == ("topic", topic_arn)
    topic.sync.publish({"from": "the function's account"})
    got = queues.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [json.loads(m["Body"]) for m in got] == [{"from": "the function's account"}]


def _shop(folder: Path, catalog: str) -> Path:
    """The shop app with ``kv.catalog`` declared as ``catalog``, in a folder (and module) of its own."""
    shutil.copytree(SHOP, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    toml = folder / "overcast.toml"
    text = toml.read_text().replace('existing = ["kv.catalog"]\n', "")
    toml.write_text(text.replace('kv.catalog = "dynamodb://legacy-catalog"', catalog))
    return folder


def test_the_plan_grants_another_accounts_table_by_arn_and_refuses_to_create_one(tmp_path: Path) -> None:
    """Unit-level (no server): the plan of a table declared by another account's ARN, and a
    table of another account given by URL without ``existing``: an error naming it."""
    arn = f"arn:aws:dynamodb:eu-west-1:{OTHER_ACCOUNT}:table/legacy-catalog"
    shop = _shop(tmp_path / "one" / "shop", f'kv.catalog = {{ arn = "{arn}", existing = true }}')
    main = make_plan(load_app(shop), "aws").documents["main.tf.json"]
    assert "legacy-catalog" not in json.dumps(main["resource"].get("aws_dynamodb_table", {}))
    assert arn in json.dumps(main["resource"]["aws_iam_role_policy"])  # the role may reach it by its ARN
    shop = _shop(tmp_path / "two" / "shop", f'kv.catalog = "dynamodb://legacy-catalog?account={OTHER_ACCOUNT}"')
    wanted = f'kv.catalog = {{ arn = "arn:aws:dynamodb:REGION:{OTHER_ACCOUNT}:table/legacy-catalog", existing = true }}'
    with pytest.raises(ConfigError, match=re.escape(wanted)):
        make_plan(load_app(shop), "aws")
