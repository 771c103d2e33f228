"""Event Grid deliveries as CloudEvents 1.0, and the two subscription handshakes.

Event Grid delivers in one of two schemas. The Event Grid schema (a JSON array of
``{id, topic, subject, eventType, eventTime, data, dataVersion}``) becomes CloudEvents
the way Azure maps it itself: ``source`` = topic, ``type`` = eventType, ``time`` =
eventTime, ``subject`` and ``data`` kept (``dataVersion`` as the extension
``dataversion``). The CloudEvents schema (structured, batched or binary mode) is parsed
by the ``cloudevents`` SDK; the Event Grid schema's events are built here and checked
against CloudEvents 1.0. Either way the event's ``original`` is what was delivered.

A webhook endpoint must prove it wants the events before Event Grid sends any:

* Event Grid schema: a ``Microsoft.EventGrid.SubscriptionValidationEvent`` (header
  ``aeg-event-type: SubscriptionValidation``) answered with
  ``{"validationResponse": <data.validationCode>}``;
* CloudEvents schema (the CloudEvents webhook spec): an ``OPTIONS`` request with
  ``WebHook-Request-Origin`` answered with ``WebHook-Allowed-Origin``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.formats.json import JSONFormat

from ...errors import InvalidArgument
from ...runtime.cloudevent import CloudEvent

__all__ = [
    "VALIDATION_EVENT",
    "Handshake",
    "cloudevent_from_eventgrid",
    "from_function_event",
    "handshake",
    "parse_delivery",
]

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
_DEFAULT_SOURCE = "/azure/eventgrid"
_FORMAT = JSONFormat()


@dataclass(frozen=True)
class Handshake:
    """The reply to a validation request: status, headers and JSON body (or none)."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None = None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Event Grid writes 7 fractional digits; Python reads at most 6
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
        text = f"{head}.{rest}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _content_type(data: Any) -> str:
    if isinstance(data, bytes):
        return "application/octet-stream"
    return "text/plain" if isinstance(data, str) else "application/json"


def cloudevent_from_eventgrid(event: Mapping[str, Any], *, original: Any = None) -> CloudEvent:
    """One Event Grid schema event as a CloudEvent (checked against CloudEvents 1.0)."""
    try:
        id_, type_ = str(event["id"]), str(event["eventType"])
    except KeyError as exc:
        raise InvalidArgument(f"Event Grid event without {exc.args[0]!r}: {dict(event)!r:.200}") from exc
    data = event.get("data")
    return CloudEvent(
        type=type_,
        source=str(event.get("topic") or _DEFAULT_SOURCE),
        id=id_,
        data=data,
        time=_time(event.get("eventTime")) or datetime.now(UTC),
        subject=str(event["subject"]) if event.get("subject") else None,
        datacontenttype=None if data is None else _content_type(data),
        extensions={"dataversion": str(event["dataVersion"])} if event.get("dataVersion") else {},
        original=event if original is None else original,
    ).checked()


def _cloudevent_from_dict(event: Mapping[str, Any], *, original: Any = None) -> CloudEvent:
    """A structured-mode CloudEvent held as a dict (one element of a batch)."""
    fixed = dict(event)
    if "specversion" not in fixed and "specVersion" in fixed:  # as Azure's own examples spell it
        fixed["specversion"] = fixed.pop("specVersion")
    sdk = _FORMAT.read(None, json.dumps(fixed))
    return CloudEvent.from_sdk(sdk, original=event if original is None else original)


def _is_cloudevent(event: Mapping[str, Any]) -> bool:
    return "specversion" in event or "specVersion" in event


def parse_delivery(headers: Mapping[str, str], body: bytes) -> list[CloudEvent]:
    """Every event of one webhook delivery (any schema or mode), as CloudEvents.

    Args:
        headers: the request headers, names in lower case.
        body: the request body.

    Raises:
        InvalidArgument: the body is no Event Grid or CloudEvents delivery.
    """
    content_type = (headers.get("content-type") or "").partition(";")[0].strip().lower()
    if any(name.startswith("ce-") for name in headers):
        try:
            sdk = from_http_event(HTTPMessage(headers=dict(headers), body=body))
        except Exception as exc:  # the SDK raises several types for bad input
            raise InvalidArgument(f"not a binary-mode CloudEvent: {exc}") from exc
        return [CloudEvent.from_sdk(sdk, original=HTTPMessage(headers=dict(headers), body=body))]
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise InvalidArgument(f"Event Grid delivery is not JSON ({content_type or 'no content type'})") from exc
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise InvalidArgument("Event Grid delivery holds no event")
    events = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidArgument(f"Event Grid delivery holds a {type(item).__name__}, not an event")
        try:
            if _is_cloudevent(item):
                events.append(_cloudevent_from_dict(item))
            else:
                events.append(cloudevent_from_eventgrid(item))
        except InvalidArgument:
            raise
        except Exception as exc:
            raise InvalidArgument(f"malformed event in an Event Grid delivery: {exc}") from exc
    return events


def from_function_event(event: Any) -> CloudEvent:
    """What an Event Grid trigger gives a function (``func.EventGridEvent`` or ``func.CloudEvent``)."""
    if hasattr(event, "event_type"):
        fields = {
            "id": event.id,
            "topic": event.topic,
            "subject": event.subject,
            "eventType": event.event_type,
            "eventTime": event.event_time,
            "data": event.get_json(),
            "dataVersion": event.data_version,
        }
        return cloudevent_from_eventgrid(fields, original=event)
    time = getattr(event, "time", None)
    return CloudEvent(
        type=event.type,
        source=event.source,
        id=event.id,
        data=event.get_json(),
        time=datetime.now(UTC) if time is None else time,
        subject=getattr(event, "subject", None),
        datacontenttype=getattr(event, "datacontenttype", None),
        dataschema=getattr(event, "dataschema", None),
        specversion=event.specversion or "1.0",
        extensions=dict(getattr(event, "extension_attrs", {}) or {}),
        original=event,
    ).checked()


def handshake(method: str, headers: Mapping[str, str], body: bytes) -> Handshake | None:
    """The reply to a subscription validation request, or None for an ordinary delivery.

    Args:
        method: the HTTP method.
        headers: the request headers, names in lower case.
        body: the request body.
    """
    if method == "OPTIONS":
        origin = headers.get("webhook-request-origin")
        if origin is None:
            return Handshake(400, {"content-type": "text/plain"}, None)
        reply = {"webhook-allowed-origin": origin, "allow": "POST, OPTIONS"}
        if "webhook-request-rate" in headers:
            reply["webhook-allowed-rate"] = "*"
        return Handshake(200, reply)
    validation = (headers.get("aeg-event-type") or "").lower() == "subscriptionvalidation"
    if not validation and VALIDATION_EVENT.encode() not in body[:2048]:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return Handshake(400, {"content-type": "application/json"}, {"error": "validation request is not JSON"})
    first = payload[0] if isinstance(payload, list) and payload else payload
    if not isinstance(first, dict) or first.get("eventType") != VALIDATION_EVENT:
        if validation:
            return Handshake(400, {"content-type": "application/json"}, {"error": "no SubscriptionValidationEvent"})
        return None
    data = first.get("data")
    code = data.get("validationCode") if isinstance(data, Mapping) else None
    if not isinstance(code, str):
        return Handshake(400, {"content-type": "application/json"}, {"error": "validationCode missing"})
    return Handshake(200, {"content-type": "application/json"}, {"validationResponse": code})
