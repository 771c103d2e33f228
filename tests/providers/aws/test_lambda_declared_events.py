"""``@app.on(...)``: event handlers declared on the App reach the Lambda runtime without
``routes=`` (so a plan can wire their sources); ``routes=`` still works and comes first."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.errors import ConfigError
from overcast.providers.aws import lambda_handler
from overcast.providers.aws.lambda_events import UnroutedEvent

EVENTS = Path(__file__).parents[2] / "fixtures" / "aws" / "aws-lambda-go" / "events"


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def _s3(event_name: str, key: str, bucket: str = "sourcebucket") -> Any:
    event = copy.deepcopy(_event("s3-event.json"))
    record = event["Records"][0]
    record["eventName"] = event_name
    record["s3"]["object"]["key"] = key
    record["s3"]["bucket"]["name"] = bucket
    return event


@pytest.fixture
def app(tmp_path: Path) -> overcast.App:
    (tmp_path / "overcast.toml").write_text('[targets.aws]\nbucket.uploads = "s3://sourcebucket"\n')
    made = overcast.App("declared", config=tmp_path / "overcast.toml")
    return made


def test_bucket_events_reach_the_handler_declared_for_their_kind_and_prefix(
    app: overcast.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    uploads = app.bucket("uploads")
    seen: list[tuple[str, str | None]] = []

    @app.on(uploads, events=("created",), prefix="incoming/")
    async def on_created(event: overcast.CloudEvent) -> None:
        seen.append(("created", event.subject))

    @app.on(uploads, events=("deleted",))
    async def on_deleted(event: overcast.CloudEvent) -> None:
        seen.append(("deleted", event.subject))

    handler = lambda_handler(app)
    handler(_s3("ObjectCreated:Put", "incoming/a.jpg"), None)
    handler(_s3("ObjectRemoved:Delete", "old/b.jpg"), None)
    assert seen == [("created", "incoming/a.jpg"), ("deleted", "old/b.jpg")]
    with pytest.raises(UnroutedEvent, match=r"no handler for aws\.s3\.ObjectCreated:Put"):
        handler(_s3("ObjectCreated:Put", "elsewhere/c.jpg"), None)  # outside the prefix


def test_a_declared_pattern_routes_an_outside_source(app: overcast.App) -> None:
    changes: list[str] = []

    @app.on("arn:aws:dynamodb:*:table/Example-Table/stream/*")
    async def table_changed(event: overcast.CloudEvent) -> None:
        changes.append(event.type)

    result = lambda_handler(app)(_event("dynamodb-event.json"), None)
    assert result == {"batchItemFailures": []}
    assert len(changes) == 2


def test_routes_given_to_the_handler_still_work_and_come_first(app: overcast.App) -> None:
    taken: list[str] = []

    @app.on("arn:aws:dynamodb:*")
    async def declared(event: overcast.CloudEvent) -> None:
        taken.append("declared")

    async def given(event: overcast.CloudEvent) -> None:
        taken.append("given")

    lambda_handler(app, routes={"arn:aws:dynamodb:*": given})(_event("dynamodb-event.json"), None)
    assert taken == ["given", "given"]


def test_on_refuses_what_it_cannot_wire(app: overcast.App, tmp_path: Path) -> None:
    uploads = app.bucket("uploads")
    with pytest.raises(ConfigError, match=r"events must be some of \('created', 'deleted'\), got \('changed',\)"):
        app.on(uploads, events=("changed",))
    with pytest.raises(ConfigError, match="on\\(\\) takes a bucket of this app or a source pattern, got 3"):
        app.on(3)  # type: ignore[arg-type]
    other = overcast.App("other", config=tmp_path / "overcast.toml").bucket("uploads")
    with pytest.raises(ConfigError, match="on\\(\\) takes a bucket declared on this app"):
        app.on(other)

    @app.on("orders-*")
    async def first(event: overcast.CloudEvent) -> None: ...

    with pytest.raises(ConfigError, match="two event handlers are named 'first'"):
        app.on("other-*", name="first")(first)
