"""End to end: AWS's runtime client ``awslambdaric``, in its own process, runs the users
example's ``lambda_function.handler`` against our Lambda Runtime API test server, with
moto's server behind it as DynamoDB, S3, SNS and SQS.

One invocation after another, as on Lambda: an HTTP API request creates a user (DynamoDB
write, SNS publish), another reads a user written beforehand (a DynamoDB read), the SNS
message that reached the subscription's SQS queue comes back as an SQS event and its
handler writes the welcome note to S3, and the hourly schedule fires from an EventBridge
event. A malformed event is reported to the Runtime API as an invocation error.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from runtime_api import RuntimeAPITestServer

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "aws"


def _http(method: str, path: str, body: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (FIXTURES / "aws-lambda-go/events/apigw-v2-request-no-authorizer.json").read_text()
    )
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"] = {**event["headers"], "content-type": "application/json"}
        event["headers"].pop("content-length", None)
    return event


@pytest.fixture
def deployed(moto_server: Any, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, dict[str, str]]]:
    """The example copied, its resources given unique names and provisioned on moto."""
    folder = tmp_path / "users"
    shutil.copytree(ROOT / "examples" / "users", folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "OVERCAST_TARGET": "aws",
        "OVERCAST_KV_USERS": f"dynamodb://{prefix}-users",
        "OVERCAST_BUCKET_WELCOME": f"s3://{prefix}-welcome",
        "OVERCAST_TOPIC_SIGNUPS": f"sns://{prefix}-signups",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    provision = (
        "import asyncio, json, app\n"
        "done = asyncio.run(app.app.provision())\n"
        "app.users.sync.put('ada', {'id': 'ada', 'name': 'Ada', 'email': 'ada@example.com'})\n"
        "print(json.dumps({f'{kind}/{name}': url for kind, name, url in done}))\n"
    )
    ran = subprocess.run([sys.executable, "-c", provision], cwd=folder, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    urls = json.loads(ran.stdout.strip().splitlines()[-1])
    yield env, folder, urls


@pytest.fixture
def runtime(deployed: tuple[dict[str, str], Path, dict[str, str]]) -> Iterator[RuntimeAPITestServer]:
    env, folder, _ = deployed
    with RuntimeAPITestServer() as api:
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "lambda_function.handler"],
            cwd=folder,
            env={**env, "AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": "users-demo"},
        )
        try:
            yield api
        finally:
            process.terminate()
            process.wait(timeout=10)


def _sqs_record(message: dict[str, Any], queue_url: str, arn: str) -> dict[str, Any]:
    """A received SQS message as Lambda's event source mapping hands it over."""
    attributes = {k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                  for k, v in (message.get("MessageAttributes") or {}).items() if "StringValue" in v}  # fmt: skip
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }


def test_awslambdaric_runs_the_example_against_moto(
    deployed: tuple[dict[str, str], Path, dict[str, str]], runtime: RuntimeAPITestServer
) -> None:
    env, _, urls = deployed

    # An HTTP API request reading DynamoDB (a user written before the function started).
    read = runtime.invoke(_http("GET", "/users/ada"))
    assert read.kind == "response", read.payload
    assert read.payload["statusCode"] == 200
    assert json.loads(read.payload["body"]) == {"id": "ada", "name": "Ada", "email": "ada@example.com"}
    assert runtime.invoke(_http("GET", "/users/nobody")).payload["statusCode"] == 404

    # Creating a user writes DynamoDB and publishes to SNS, which fans out to SQS.
    created = runtime.invoke(_http("POST", "/users", {"id": "bob", "name": "Bob", "email": "bob@example.com"}))
    assert created.payload["statusCode"] == 201, created.payload
    again = runtime.invoke(_http("POST", "/users", {"id": "bob", "name": "Bob", "email": "bob@example.com"}))
    assert again.payload["statusCode"] == 409

    # The subscription's queue holds the notification; Lambda would hand it over as an SQS event.
    queue_url_text = urls["subscription/signups/send_welcome"]
    queue_name = queue_url_text.split("://", 1)[1].split("?", 1)[0].rsplit("/", 1)[-1]
    sqs = boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2, AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )["Messages"]  # fmt: skip
    event = {"Records": [_sqs_record(m, queue_url, arn) for m in messages]}
    delivered = runtime.invoke(event)
    assert delivered.kind == "response", delivered.payload
    assert delivered.payload == {"batchItemFailures": []}
    bucket = env["OVERCAST_BUCKET_WELCOME"].removeprefix("s3://")
    note = boto3.client("s3").get_object(Bucket=bucket, Key="welcome/bob.txt")["Body"].read()
    assert note == b"Welcome, Bob! Your account bob is ready.\n"

    # A record whose handler fails comes back alone in batchItemFailures.
    broken = copy.deepcopy(event["Records"][0])
    broken["messageId"] = "broken-1"
    broken["body"] = json.dumps({"Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:::t",
                                 "Message": json.dumps({"id": "no-name"})})  # fmt: skip
    mixed = runtime.invoke({"Records": [broken, *event["Records"]]})
    assert mixed.payload == {"batchItemFailures": [{"itemIdentifier": "broken-1"}]}

    # The hourly schedule, from its EventBridge rule.
    scheduled = json.loads((FIXTURES / "aws-sam-cli/rendered/cloudwatch/scheduled-event.json").read_text())
    scheduled["resources"] = ["arn:aws:events:us-east-1:123456789012:rule/users-demo-count_users"]
    fired = runtime.invoke(scheduled)
    assert fired.kind == "response" and fired.payload is None

    # An event the app does not know is an invocation error, reported to the Runtime API.
    unknown = runtime.invoke({"hello": "world"})
    assert unknown.kind == "error"
    assert unknown.payload["errorType"] == "UnroutedEvent"
