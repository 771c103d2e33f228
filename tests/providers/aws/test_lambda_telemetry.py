"""Telemetry on Lambda: each invocation counted once under its kind, a 500 from an
unhandled error counted as an error, SQS record failures counted per handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overcast
from overcast import telemetry
from overcast.providers.aws import lambda_handler

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aws"


class Context:
    aws_request_id = "req-t"


@pytest.fixture
def metrics() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry.configure(service_name="lambda-test", metric_readers=[reader], set_global=False)
    yield reader
    telemetry.shutdown()


def _total(reader: InMemoryMetricReader, name: str, handler: str) -> int:
    data = reader.get_metrics_data()
    total = 0
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    total += sum(p.value for p in metric.data.data_points if p.attributes.get("handler") == handler)
    return total


def _v2(path: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (FIXTURES / "aws-lambda-go/events/apigw-v2-request-no-authorizer.json").read_text()
    )
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    return event


def test_http_invocations_and_errors_are_counted_once(metrics: InMemoryMetricReader) -> None:
    async def api(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = overcast.App("observed")
    app.http(api)
    handler = lambda_handler(app, lifespan="off")
    assert handler(_v2("/ok"), Context())["statusCode"] == 200
    assert handler(_v2("/boom"), Context())["statusCode"] == 500
    assert _total(metrics, "overcast.invocations", "http") == 2
    assert _total(metrics, "overcast.errors", "http") == 1


def test_event_invocations_are_counted_under_their_kind(metrics: InMemoryMetricReader) -> None:
    app = overcast.App("observed")

    def work(event: overcast.CloudEvent) -> None:
        if event.id == "m1":
            raise ValueError("bad")

    event = json.loads((FIXTURES / "powertools-lambda-python/events/sqsEvent.json").read_text())
    event["Records"][1]["messageId"] = "m1"
    reply = lambda_handler(app, routes={"*": work})(event, Context())
    assert reply == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert _total(metrics, "overcast.invocations", "sqs") == 1
