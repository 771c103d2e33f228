"""Hostile input into ``lambda_handler``: every recorded HTTP event (REST v1, HTTP API v2,
ALB, function URL) and every other event it takes (SQS, SNS, S3, EventBridge, schedules,
DynamoDB streams, Kinesis), mutated. The rules:

* an HTTP event always gets an HTTP reply Lambda can serialise: 400 for an envelope API
  Gateway could not have sent, the app's own answer otherwise, 500 without a traceback
  when the app raises; never an exception out of the handler;
* a batch (SQS, Kinesis, DynamoDB streams) is answered with ``batchItemFailures`` naming
  at most the bad record: every other record is handled;
* anything else is handled or fails with an Overcast error naming the event, never a
  ``KeyError``/``TypeError``/``AttributeError`` from inside the adapter.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from hostile_support import HOSTILE, apply, fixtures_under, has_traceback, load, mutated, note, paths
from hypothesis import given
from hypothesis import strategies as st

import overcast
from overcast.errors import OvercastError
from overcast.providers.aws import lambda_handler
from overcast.providers.aws.lambda_events import MalformedRecord, UnroutedEvent, event_kind
from overcast.providers.aws.lambda_http import adapter_for
from overcast.runtime.cloudevent import CloudEvent

# a failing example holding a 300 KB value is printed whole: hypothesis warns, and warnings are errors here
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

ALL = [load(p) for p in fixtures_under("aws")]
HTTP_EVENTS = [e for e in ALL if adapter_for(e) is not None]
OTHER_EVENTS = [e for e in ALL if adapter_for(e) is None and event_kind(e) != "unknown"]


class Context:
    aws_request_id = "req-hostile"
    function_name = "hostile"


def _api() -> FastAPI:
    api = FastAPI()

    @api.api_route("/boom", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    async def boom() -> None:
        raise RuntimeError("the app's own bug")

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    async def echo(path: str, request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "path": path,
                "query": str(request.url.query),
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
                "client": request.client.host if request.client else None,
            }
        )

    return api


def _http_handler() -> Any:
    app = overcast.App("hostile")
    app.http(_api())
    return lambda_handler(app)


HTTP = _http_handler()


def _http_reply(reply: Any, event: dict[str, Any]) -> None:
    """What API Gateway, an ALB or a function URL accepts back: a status, a body, JSON-serialisable."""
    assert isinstance(reply, dict), reply
    status = reply["statusCode"]
    assert isinstance(status, int) and 100 <= status <= 599
    json.dumps(reply)  # the runtime client serialises the reply
    assert isinstance(reply["body"], str)
    assert not has_traceback(reply["body"]), reply["body"][:500]
    assert status != 500 or _asked_for_boom(event), f"500 for a request the app answers: {reply['body'][:200]}"
    note(f"status {status}")


def _asked_for_boom(event: dict[str, Any]) -> bool:
    text = json.dumps(event, default=str)
    return "boom" in text


@HOSTILE
@given(mutated(HTTP_EVENTS))
def test_an_http_event_always_gets_an_http_reply(case: tuple[dict[str, Any], list[Any]]) -> None:
    event, _ = case
    if adapter_for(event) is None:  # the mutation made it no HTTP event: a clear error naming it
        with pytest.raises(UnroutedEvent, match="does not know this event"):
            HTTP(event, Context())
        note("no longer an HTTP event")
        return
    _http_reply(HTTP(event, Context()), event)


@HOSTILE
@given(st.sampled_from(HTTP_EVENTS), st.sampled_from(["headers", "multiValueHeaders"]), st.data())
def test_a_null_header_value_is_left_out(event: dict[str, Any], where: str, data: st.DataObject) -> None:
    """The crash the issue found: a header (or one of its values) that is null."""
    event = copy.deepcopy(event)
    headers = event.get(where)
    if not isinstance(headers, dict) or not headers:
        event[where] = {"X-Null": None, "Host": "example.com"}
    else:
        name = data.draw(st.sampled_from(sorted(headers)))
        headers[name] = [None, "kept"] if where == "multiValueHeaders" and data.draw(st.booleans()) else None
    _http_reply(HTTP(event, Context()), event)


@pytest.mark.parametrize("domain", [None, 7, [], {}])
def test_an_odd_domain_name_still_infers_the_kind(domain: Any) -> None:
    """``requestContext.domainName`` null or not a string: the kind is inferred from the rest."""
    event = copy.deepcopy(next(e for e in HTTP_EVENTS if e.get("version") == "2.0"))
    event["requestContext"]["domainName"] = domain
    adapter = adapter_for(event)
    assert adapter is not None and adapter.name in ("apigateway-http", "function-url")
    _http_reply(HTTP(event, Context()), event)


def test_the_apps_own_error_is_a_bare_500() -> None:
    event = copy.deepcopy(next(e for e in HTTP_EVENTS if "httpMethod" in e and "elb" not in e["requestContext"]))
    event["path"] = "/boom"
    event["httpMethod"] = "GET"
    event["body"] = None
    reply = HTTP(event, Context())
    assert reply["statusCode"] == 500 and reply["body"] == "Internal Server Error"


@pytest.mark.parametrize(
    "change",
    [
        {"isBase64Encoded": True, "body": "not base64!!"},
        {"httpMethod": None},
        {"httpMethod": 7},
        {"body": {"a": 1}},
    ],
    ids=["bad-base64", "null-method", "int-method", "object-body"],
)
def test_an_envelope_api_gateway_could_not_send_is_a_400(change: dict[str, Any]) -> None:
    event = copy.deepcopy(next(e for e in HTTP_EVENTS if "httpMethod" in e and "elb" not in e["requestContext"]))
    event.update(change)
    reply = HTTP(event, Context())
    assert reply["statusCode"] == 400 and reply["body"] == "Bad Request"


# -- every other event --------------------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, event: CloudEvent) -> None:
        self.ids.append(event.id)


def _event_handler(seen: Seen) -> Any:
    return lambda_handler(overcast.App("hostile"), routes={"*": seen})


SEEN = Seen()
EVENTS = _event_handler(SEEN)


@HOSTILE
@given(mutated(OTHER_EVENTS))
def test_every_other_event_is_handled_or_a_clear_error(case: tuple[Any, list[Any]]) -> None:
    event, _ = case
    kind = event_kind(event)
    try:
        reply = EVENTS(event, Context())
    except OvercastError as exc:
        assert kind not in ("sqs", "dynamodb", "kinesis"), f"a {kind} batch failed whole: {exc!r}"
        if isinstance(exc, UnroutedEvent):  # names the event and the route that would take it
            assert "does not know this event" in str(exc) or "routes=" in str(exc), exc
        else:
            assert isinstance(exc, MalformedRecord) and "record" in str(exc), exc
        note(f"{kind}: {type(exc).__name__}")
        return
    note(f"{kind}: handled")
    if kind in ("sqs", "dynamodb", "kinesis"):
        _batch_reply(reply)
    else:
        assert reply is None


def _batch_reply(reply: Any) -> list[str]:
    assert isinstance(reply, dict) and set(reply) == {"batchItemFailures"}
    ids = [item["itemIdentifier"] for item in reply["batchItemFailures"]]
    assert all(isinstance(i, str) and i for i in ids), ids  # an empty id would fail the batch whole
    json.dumps(reply)
    return ids


# -- one bad record in a batch ------------------------------------------------------------

BATCH_SIZE = 5


def _batch(kind: str) -> dict[str, Any]:
    """A batch of ``BATCH_SIZE`` distinct records of ``kind`` from a recorded event."""
    template = next(e for e in OTHER_EVENTS if event_kind(e) == kind)
    records = []
    for i in range(BATCH_SIZE):
        record = copy.deepcopy(template["Records"][0])
        if kind == "sqs":
            record["messageId"] = f"m{i}"
            record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:orders"
            record["body"] = json.dumps({"n": i})
        elif kind == "kinesis":
            record["eventID"] = f"m{i}"
            record["kinesis"]["sequenceNumber"] = f"s{i}"
        else:
            record["eventID"] = f"m{i}"
            record["dynamodb"]["SequenceNumber"] = f"s{i}"
        records.append(record)
    return {"Records": records}


def _failure_id(kind: str, record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if kind == "sqs":
        value = record.get("messageId")
    else:
        change = record.get("kinesis" if kind == "kinesis" else "dynamodb")
        value = (
            change.get("sequenceNumber" if kind == "kinesis" else "SequenceNumber")
            if isinstance(change, dict)
            else None
        )
    return value if isinstance(value, str) and value else None


@st.composite
def one_bad_record(draw: st.DrawFn, kind: str) -> tuple[dict[str, Any], int]:
    batch = _batch(kind)
    bad = draw(st.integers(0, BATCH_SIZE - 1))
    record = batch["Records"][bad]
    if draw(st.integers(0, 9)) == 0:  # now and then the record itself is not an object
        batch["Records"][bad] = draw(st.sampled_from([None, "", 7, [], "record"]))
        return batch, bad
    places = list(paths(record))
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["drop", "set", "append"]))
        odd = draw(st.sampled_from([None, "", "%ZZ", "\x00", "\ud800", 7, [], {}, "a" * 10_000, "not base64!!"]))
        apply(record, place, op, odd)
    return batch, bad


@HOSTILE
@pytest.mark.parametrize("kind", ["sqs", "kinesis", "dynamodb"])
@given(data=st.data())
def test_one_bad_record_is_reported_alone(kind: str, data: st.DataObject) -> None:
    batch, bad = data.draw(one_bad_record(kind))
    seen = Seen()
    handler = lambda_handler(overcast.App("batch"), routes={"*": seen})
    failed = _batch_reply(handler(batch, Context()))
    good = [f"m{i}" for i in range(BATCH_SIZE) if i != bad]
    bad_id = _failure_id(kind, batch["Records"][bad])
    if kind == "sqs":  # every good record handled, and only the bad one (if any) given back
        assert [i for i in good if i not in seen.ids] == []
        assert set(failed) <= ({bad_id} if bad_id else set())
    else:  # a stream keeps order: the records before it handled, the batch resumes from it
        assert [f"m{i}" for i in range(bad)] == [i for i in seen.ids if i in good][:bad]
        assert failed in ([], [bad_id] if bad_id else [])
        if not failed:
            assert [i for i in good if i not in seen.ids] == []


def test_an_sqs_record_without_a_message_id_is_logged_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    """The crash the issue found: ``KeyError: 'messageId'`` building the partial-batch reply."""
    batch = _batch("sqs")
    del batch["Records"][1]["messageId"]
    batch["Records"][3]["messageId"] = None
    seen = Seen()

    def fail_on_three(event: CloudEvent) -> None:
        if event.data == {"n": 3}:
            raise RuntimeError("bad")
        seen.ids.append(event.id)

    reply = lambda_handler(overcast.App("batch"), routes={"*": fail_on_three})(batch, Context())
    assert reply == {"batchItemFailures": []}
    assert sorted(seen.ids) == ["m0", "m2", "m4"]
    assert "without a messageId" in caplog.text


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"Records": [{"eventSource": "aws:codecommit"}]}, "records from aws:codecommit"),
        ({"Records": [None, 7]}, "records from NoneType, int"),
        ({"detail": {}}, "keys: detail"),
        ([1, 2], "list"),
    ],
)
def test_an_event_of_no_known_kind_is_named_in_its_error(event: Any, named: str) -> None:
    with pytest.raises(UnroutedEvent, match=f"does not know this event \\({named}\\)"):
        EVENTS(event, Context())


def test_fixtures_are_loaded() -> None:
    """The strategies draw from the recorded events of every kind the handler takes."""
    kinds = {event_kind(e) for e in OTHER_EVENTS} | {adapter_for(e).name for e in HTTP_EVENTS}  # type: ignore[union-attr]
    assert kinds >= {"sqs", "sns", "s3", "dynamodb", "kinesis", "schedule", "eventbridge"}
    assert kinds >= {"apigateway-rest", "apigateway-http", "function-url", "alb"}
    assert Path(__file__).parent.name == "hostile"


# -- the REST v1 fast paths answer as the general ones -----------------------------------------

#: names that collide once lower-cased, the scope's own headers, and the cookie header
_NAMES = ["Host", "host", "HOST", "X-Forwarded-Proto", "x-forwarded-port", "Cookie", "cookie", "Accept", "X-Ünï"]
_VALUES = st.one_of(
    st.sampled_from(["example.com", "https", "443", "a=1", "é", "\u2603", "\ud800", "a/b", ""]),
    st.text(max_size=8),
)
_ITEM = st.one_of(_VALUES, st.none(), st.integers(), st.just(["nested"]))
_MULTI_VALUE = st.one_of(
    st.lists(_VALUES, min_size=1, max_size=1),  # what API Gateway sends: the fast path's case
    st.lists(_ITEM, max_size=3),
    _VALUES,  # a string where a list belongs (one character long too)
    st.dictionaries(st.sampled_from(["k"]), _VALUES, min_size=1, max_size=1),
    st.none(),
    st.integers(),
)


def _scope_or_error(event: dict[str, Any]) -> Any:
    from overcast.providers.aws import lambda_http

    try:
        scope, body = lambda_http.API_GATEWAY_V1.scope(copy.deepcopy(event), "")
    except (KeyError, TypeError, ValueError) as exc:  # what the handler answers 400
        return type(exc), str(exc)
    scope.pop("aws.event")
    return scope, body


@HOSTILE
@given(
    st.dictionaries(st.sampled_from(_NAMES), _MULTI_VALUE, max_size=6),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(_NAMES), st.one_of(_VALUES, st.none(), st.integers()))),
    st.booleans(),
)
def test_rest_v1_headers_fast_path_gives_the_general_paths_scope(
    multi: dict[str, Any], single: dict[str, Any] | None, agree: bool
) -> None:
    """The one-comprehension path for ``multiValueHeaders`` (every header one string, names seen
    before) gives the scope, or the error, that the header-by-header path gives: for maps that
    disagree, names differing only in case, repeated cookies, values not latin-1 or not UTF-8."""
    from overcast.providers.aws import lambda_http

    if agree:  # the two maps as API Gateway sends them
        single = {name: value[-1] for name, value in multi.items() if isinstance(value, list) and value}
    event = copy.deepcopy(next(e for e in HTTP_EVENTS if adapter_for(e) is lambda_http.API_GATEWAY_V1))
    event["multiValueHeaders"], event["headers"] = multi, single
    fast = lambda_http._one_value_pairs
    lambda_http._one_value_pairs = lambda given: None  # type: ignore[assignment]  # the general path alone
    try:
        general = _scope_or_error(event)  # (and the names it met are cached now)
    finally:
        lambda_http._one_value_pairs = fast
    assert _scope_or_error(event) == general
    one_string_each = all(isinstance(v, list) and len(v) == 1 and isinstance(v[0], str) for v in multi.values())
    cached = all(name in lambda_http._NAMES for name in multi)  # not when other tests filled the cache
    if multi and one_string_each and cached and not any("\ud800" in v[0] for v in multi.values()):
        assert fast(multi) is not None  # the fast path was the one taken
        note("fast path taken")


@HOSTILE
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"Content-Type", b"content-type", b"Content-Encoding", b"Set-Cookie", b"X-\xe9"]),
            st.sampled_from([b"text/plain", b"application/json", b"image/png", b"gzip", b"identity", b"\xff", b"a=1"]),
        ),
        max_size=5,
    ),
    st.sampled_from([b"", b"hi", b"\xff\xfe", "\u2603".encode()]),
)
def test_rest_v1_reply_fast_path_gives_the_general_reply(headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """The reply's headers (repeated ones as lists, names lower-cased) and its body (text or
    base64) as the header-by-header rules give them, whatever the cached names and types."""
    import base64

    from overcast.providers.aws import lambda_http

    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in multi:
            multi[name].append(value)
        elif name in single:
            multi[name] = [single.pop(name), value]
        else:
            single[name] = value
    text, encoded = "", False
    if body:
        try:
            if not lambda_http.is_text(single.get("content-type"), single.get("content-encoding")):
                raise UnicodeDecodeError("utf-8", body, 0, 1, "binary")
            text = body.decode()
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
    expected = {
        "statusCode": 200,
        "headers": single,
        "multiValueHeaders": multi,
        "body": text,
        "isBase64Encoded": encoded,
    }
    for _ in range(2):  # the names and content types uncached, then cached
        assert lambda_http.API_GATEWAY_V1.response({}, 200, list(headers), body) == expected
