"""The one router every runtime uses: targets by name or function, patterns in order, the
errors of a route naming nothing and of an event nothing claims; routed events run through
``dispatch.run_event``; CloudEvents checked against the specification."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import overcast
from overcast.errors import ConfigError, InvalidArgument
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.dispatch import run_event
from overcast.runtime.router import Router, UnroutedEvent, takes_event


def _app() -> overcast.App:
    app = overcast.App("shop")

    @app.subscribe(app.queue("orders"))
    def take_order(event: overcast.CloudEvent) -> None: ...

    @app.schedule("rate(1 hour)")
    def hourly() -> None: ...

    return app


def test_targets_are_subscriptions_schedules_or_functions() -> None:
    def audit(event: CloudEvent) -> None: ...

    router = Router(_app(), {"orders-*": "take_order", "rule/*": "hourly", "*": audit}, owner="lambda_handler")
    sub, job, fn = (target for _, target in router.routes)
    assert (sub.name, sub.subscription is not None, sub.job, sub.takes_event) == ("take_order", True, None, True)
    assert (job.name, job.job is not None, job.takes_event) == ("hourly", True, False)
    assert (fn.name, fn.handler, fn.subscription, fn.job) == ("audit", audit, None, None)


def test_the_first_route_matching_any_name_wins() -> None:
    router = Router(_app(), {"orders-*": "take_order", "*": "hourly"}, owner="cloud_run_app")
    target = router.match(None, "", "orders-eu")
    assert target is not None and target.name == "take_order"
    target = router.match("something-else")
    assert target is not None and target.name == "hourly"
    assert Router(_app(), {"a*": "hourly"}, owner="x").match("b", None) is None
    assert router.by_key("orders-*") is router.routes[0][1]
    assert router.by_key("hourly") is router.routes[1][1]
    assert router.by_key("nothing") is None


def test_a_route_naming_nothing_names_the_route_and_what_there_is() -> None:
    with pytest.raises(ConfigError, match=r"lambda_handler routes: 'x\*' -> 'missing' names no subscription") as err:
        Router(_app(), {"x*": "missing"}, owner="lambda_handler")
    assert "there are: take_order, hourly" in str(err.value)
    with pytest.raises(ConfigError, match=r"^function_app: 'uploads' -> 'nope'"):
        Router(_app(), owner="function_app", option="").target("nope", key="uploads")


def test_an_unrouted_event_names_the_event_and_the_route_that_would_take_it() -> None:
    router = Router(_app(), owner="lambda_handler")
    error = router.unrouted("no handler for aws.s3.ObjectCreated:Put from arn:aws:s3:::pics", router.hint("pics"))
    assert isinstance(error, UnroutedEvent) and isinstance(error, ConfigError)
    assert str(error) == (
        "shop: no handler for aws.s3.ObjectCreated:Put from arn:aws:s3:::pics; "
        "add lambda_handler(app, routes={'pics': 'handler_name'})"
    )


def test_one_rule_for_whether_a_handler_takes_the_event() -> None:
    def bare() -> None: ...

    def keyword_only(*, event: Any = None) -> None: ...

    def star(*args: Any) -> None: ...

    assert not takes_event(bare) and not takes_event(keyword_only)
    assert takes_event(star) and takes_event(lambda event: None) and takes_event(print)


def test_run_event_reports_the_outcome_and_calls_a_bare_schedule_without_the_event() -> None:
    app = _app()
    seen: list[Any] = []

    def failing(event: CloudEvent) -> None:
        seen.append(event.id)
        raise LookupError("gone")

    router = Router(app, {"f": failing}, owner="x")
    event = CloudEvent(type="t", source="s", id="e-1", extensions={"attempts": 3})

    async def scenario() -> tuple[Any, Any]:
        return await run_event(router.routes[0][1], event), await run_event(router.named("hourly"), event)  # type: ignore[arg-type]

    failed, ok = asyncio.run(scenario())
    assert (failed.outcome, failed.handler, failed.event_id, failed.attempt) == ("failed", "failing", "e-1", 3)
    assert isinstance(failed.error, LookupError) and failed.resource == "s"
    assert (ok.outcome, ok.error) == ("ok", None) and seen == ["e-1"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"id": ""}, "id must be a non-empty string"),
        ({"source": ""}, "source must be a non-empty string"),
        ({"specversion": "0.3"}, "specversion must be '1.0'"),
        ({"subject": ""}, "subject must be a non-empty string or absent"),
        ({"time": __import__("datetime").datetime(2026, 1, 1)}, "time must be a datetime with a time zone"),
        ({"extensions": {"Trace-Id": "x"}}, "extension 'Trace-Id' must be lower-case"),
        ({"extensions": {"data": "x"}}, "extension 'data'"),
    ],
)
def test_checked_events_hold_to_the_specification(changes: dict[str, Any], problem: str) -> None:
    good = {"type": "aws.s3.ObjectCreated:Put", "source": "arn:aws:s3:::pics", "id": "e-1"}
    event = CloudEvent(**good, extensions={"attempts": 1})
    assert event.checked() is event
    event.to_sdk()  # the SDK agrees
    with pytest.raises(InvalidArgument, match=r"CloudEvent 'aws\.s3\.ObjectCreated:Put'") as err:
        CloudEvent(**{**good, **changes}).checked()
    assert problem in str(err.value)
