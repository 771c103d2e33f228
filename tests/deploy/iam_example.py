"""Run in a fresh process with the example's function role: the users example's Lambda handler
serves what its users do (create and read a user over HTTP, the signup's welcome from the
topic's subscription queue, the hourly count) against moto with IAM enforced. Prints JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3

sys.path.insert(0, sys.argv[1])  # examples/users
from lambda_function import handler


def http(method: str, path: str, body: dict[str, Any] | None = None) -> int:
    event = {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws", "content-type": "application/json"},
        "requestContext": {
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": f"{method}{path}",
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }
    return int(handler(event, None)["statusCode"])


def welcome() -> Any:
    """What Lambda's event source mapping does with the role: receive from the subscription's
    queue, hand the batch to the handler, delete what succeeded."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="users-demo-signups-send_welcome")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2, AttributeNames=["All"]).get("Messages", [])
    arn = "arn:aws:sqs:us-east-1:123456789012:users-demo-signups-send_welcome"
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
        }
        for m in messages
    ]
    result = handler({"Records": records}, None)
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return {"received": len(records), "result": result}


def main() -> None:
    schedule = {
        "version": "0",
        "id": "s1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-07T20:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/users-demo-count_users"],
        "detail": {},
    }
    report = {
        "create": http("POST", "/users", {"id": "u1", "name": "Ada", "email": "ada@example.com"}),
        "again": http("POST", "/users", {"id": "u1", "name": "Ada", "email": "ada@example.com"}),
        "read": http("GET", "/users/u1"),
        "welcome": welcome(),
        "count": handler(schedule, None),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
