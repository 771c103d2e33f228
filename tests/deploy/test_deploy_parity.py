"""Dev and production agree: what ``overcast provision`` creates on moto has the key schema,
TTL attribute, redrive and subscriptions the plan gives Terraform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from overcast.deploy.plan import make_plan
from overcast.loader import load_app
from servers import Server
from servers.aws import start_moto

HERE = Path(__file__).resolve().parent
SHOP = HERE / "apps" / "shop"
ROOT = HERE.parents[1]
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def provisioned() -> Iterator[Server]:
    server = start_moto()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OVERCAST_"))}
    env.update(server.env, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, PYTHONPATH=str(ROOT / "src"))
    try:
        subprocess.run(
            [sys.executable, "-m", "overcast", "provision", str(SHOP), "--target", "aws"],
            env=env,
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def planned() -> dict[str, Any]:
    resources: dict[str, Any] = make_plan(load_app(SHOP), "aws").documents["main.tf.json"]["resource"]
    return resources


def _client(server: Server, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_the_table_has_the_planned_keys_and_ttl(provisioned: Server, planned: dict[str, Any]) -> None:
    table = planned["aws_dynamodb_table"]["kv_orders"]
    dynamodb = _client(provisioned, "dynamodb")
    found = dynamodb.describe_table(TableName=table["name"])["Table"]
    keys = {k["KeyType"]: k["AttributeName"] for k in found["KeySchema"]}
    assert keys == {"HASH": table["hash_key"], "RANGE": table["range_key"]}
    attributes = sorted((a["AttributeName"], a["AttributeType"]) for a in found["AttributeDefinitions"])
    assert attributes == sorted((a["name"], a["type"]) for a in table["attribute"])
    ttl = dynamodb.describe_time_to_live(TableName=table["name"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == table["ttl"]["attribute_name"]


@pytest.mark.parametrize("label", ["queue_jobs", "subscription_events_audit"])
def test_queues_have_the_planned_dead_letters_and_redrive(
    provisioned: Server, planned: dict[str, Any], label: str
) -> None:
    queue, dead_letters = planned["aws_sqs_queue"][label], planned["aws_sqs_queue"][f"{label}_dlq"]
    sqs = _client(provisioned, "sqs")
    url = sqs.get_queue_url(QueueName=queue["name"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == json.loads(queue["redrive_policy"])["maxReceiveCount"]
    assert redrive["deadLetterTargetArn"].rsplit(":", 1)[-1] == dead_letters["name"]
    assert int(attributes["VisibilityTimeout"]) == queue["visibility_timeout_seconds"]
    assert int(attributes["DelaySeconds"]) == queue["delay_seconds"]


def test_the_topic_delivers_to_the_planned_subscription_queue(provisioned: Server, planned: dict[str, Any]) -> None:
    topic = planned["aws_sns_topic"]["topic_events"]["name"]
    queue = planned["aws_sqs_queue"]["subscription_events_audit"]["name"]
    sns = _client(provisioned, "sns")
    arn = next(t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f":{topic}"))
    endpoints = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]]
    assert [e.rsplit(":", 1)[-1] for e in endpoints] == [queue]
    assert planned["aws_sns_topic_subscription"]["subscription_events_audit"]["protocol"] == "sqs"


def test_the_bucket_is_the_planned_one(provisioned: Server, planned: dict[str, Any]) -> None:
    bucket = planned["aws_s3_bucket"]["bucket_uploads"]["bucket"]
    assert bucket in {b["Name"] for b in _client(provisioned, "s3").list_buckets()["Buckets"]}
