"""Google event payloads as CloudEvents 1.0.

Four shapes reach a Cloud Run service or a Cloud Function over HTTP:

* a Pub/Sub push delivery, the envelope ``{"message": {...}, "subscription": "..."}``;
* a CloudEvent from Eventarc, in binary mode (``ce-*`` headers) or structured mode
  (``application/cloudevents+json``), parsed by the ``cloudevents`` SDK (2.x);
* a Cloud Storage notification, which is a Pub/Sub push whose attributes carry
  ``eventType``, ``bucketId`` and ``objectId``;
* a legacy Cloud Functions background event (``{"context": {...}, "data": ...}`` or the
  older flat form with ``eventType`` at the top), converted as the functions-framework
  conformance mapping says (``docs/mapping.md`` of GoogleCloudPlatform/functions-framework-conformance).

Each function here returns an :class:`~overcast.CloudEvent` whose ``original`` is what
was received.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...errors import InvalidArgument
from ...runtime.cloudevent import CloudEvent

__all__ = [
    "BadEvent",
    "from_http",
    "is_legacy_event",
    "is_push_envelope",
    "legacy_event",
    "push_event",
    "storage_notification_event",
]

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
STORAGE_DELETED = "google.cloud.storage.object.v1.deleted"


class BadEvent(InvalidArgument):
    """A request body that is not the Google event it claims to be."""


# -- legacy background events -------------------------------------------------------------

#: legacy ``eventType`` -> CloudEvent ``type`` (the conformance mapping's table)
LEGACY_TYPES: dict[str, str] = {
    "google.pubsub.topic.publish": PUBSUB_PUBLISHED,
    "providers/cloud.pubsub/eventTypes/topic.publish": PUBSUB_PUBLISHED,
    "google.storage.object.finalize": "google.cloud.storage.object.v1.finalized",
    "google.storage.object.delete": "google.cloud.storage.object.v1.deleted",
    "google.storage.object.archive": "google.cloud.storage.object.v1.archived",
    "google.storage.object.metadataUpdate": "google.cloud.storage.object.v1.metadataUpdated",
    "providers/cloud.storage/eventTypes/object.change": "google.cloud.storage.object.v1.finalized",
    "providers/cloud.firestore/eventTypes/document.write": "google.cloud.firestore.document.v1.written",
    "providers/cloud.firestore/eventTypes/document.create": "google.cloud.firestore.document.v1.created",
    "providers/cloud.firestore/eventTypes/document.update": "google.cloud.firestore.document.v1.updated",
    "providers/cloud.firestore/eventTypes/document.delete": "google.cloud.firestore.document.v1.deleted",
    "providers/firebase.auth/eventTypes/user.create": "google.firebase.auth.user.v1.created",
    "providers/firebase.auth/eventTypes/user.delete": "google.firebase.auth.user.v1.deleted",
    "providers/firebase.remoteConfig/remoteconfig.update": "google.firebase.remoteconfig.remoteConfig.v1.updated",
    "providers/google.firebase.analytics/eventTypes/event.log": "google.firebase.analytics.log.v1.written",
    "providers/google.firebase.database/eventTypes/ref.create": "google.firebase.database.ref.v1.created",
    "providers/google.firebase.database/eventTypes/ref.write": "google.firebase.database.ref.v1.written",
    "providers/google.firebase.database/eventTypes/ref.update": "google.firebase.database.ref.v1.updated",
    "providers/google.firebase.database/eventTypes/ref.delete": "google.firebase.database.ref.v1.deleted",
}

#: the service of a legacy event that names none, by the prefix of its type
_SERVICE_BY_PREFIX = (
    ("providers/cloud.firestore/", "firestore.googleapis.com"),
    ("providers/google.firebase.analytics/", "firebaseanalytics.googleapis.com"),
    ("providers/firebase.auth/", "firebaseauth.googleapis.com"),
    ("providers/google.firebase.database/", "firebasedatabase.googleapis.com"),
    ("providers/firebase.remoteConfig/", "firebaseremoteconfig.googleapis.com"),
    ("providers/cloud.pubsub/", "pubsub.googleapis.com"),
    ("providers/cloud.storage/", "storage.googleapis.com"),
    ("google.pubsub", "pubsub.googleapis.com"),
    ("google.storage", "storage.googleapis.com"),
)

#: how a service's resource name splits into the CloudEvent's source part and subject
_RESOURCE_SPLIT = {
    "storage.googleapis.com": re.compile(r"(projects/[^/]+/buckets/[^/]+)/(objects/.+?)(?:#\d+)?"),
    "firestore.googleapis.com": re.compile(r"(projects/[^/]+/databases/[^/]+)/(documents/.+)"),
    "firebasedatabase.googleapis.com": re.compile(r"projects/_/(instances/[^/]+)/(refs/.+)"),
    "firebaseanalytics.googleapis.com": re.compile(r"(projects/[^/]+)/(events/[^/]+)"),
}

_AUTH_METADATA = {"createdAt": "createTime", "lastSignedInAt": "lastSignInTime"}


def is_legacy_event(body: Any) -> bool:
    """Whether a JSON body is a Cloud Functions background event."""
    if not isinstance(body, Mapping) or "data" not in body:
        return False
    context = body.get("context")
    if isinstance(context, Mapping):
        return "eventType" in context
    return "eventType" in body and "specversion" not in body


def legacy_event(body: Mapping[str, Any]) -> CloudEvent:
    """Convert a background event (``{"context": ..., "data": ...}`` or the flat form).

    Raises:
        BadEvent: the type has no CloudEvent equivalent, or a field the mapping needs is missing.
    """
    ctx = _context(body)
    event_type = ctx.get("eventType")
    event_id = ctx.get("eventId")
    timestamp = ctx.get("timestamp")
    if not isinstance(event_type, str) or not isinstance(event_id, str):
        raise BadEvent("legacy event: eventType and eventId must be strings")
    ce_type = LEGACY_TYPES.get(event_type)
    if ce_type is None:
        raise BadEvent(f"legacy event: no CloudEvent type is known for eventType {event_type!r}")
    service, name = _service_and_name(ctx.get("resource"), event_type, event_id)
    subject: str | None = None
    split = _RESOURCE_SPLIT.get(service)
    if split is not None:
        match = split.fullmatch(name)
        if match is None:
            raise BadEvent(f"legacy event {event_id}: resource {name!r} is not a {service} resource name")
        name, subject = match.group(1), match.group(2)
    data, name, subject = _per_service(service, body, copy.deepcopy(body.get("data")), name, subject, event_id)
    return CloudEvent(
        type=ce_type,
        source=f"//{service}/{name}",
        id=event_id,
        time=_time(timestamp),
        subject=subject,
        data=data,
        datacontenttype="application/json",
        original=body,
    )


def _service_and_name(resource: Any, event_type: str, event_id: str) -> tuple[str, str]:
    """The service and resource name of a background event's ``resource`` (a mapping, or the
    name alone with the service known from the event type's prefix)."""
    service = ""
    if isinstance(resource, Mapping):
        service = str(resource.get("service") or "")
        name = resource.get("name")
    else:
        name = resource
    if not isinstance(name, str) or not name:
        raise BadEvent(f"legacy event {event_id}: resource name missing")
    if not service:
        service = next((svc for prefix, svc in _SERVICE_BY_PREFIX if event_type.startswith(prefix)), "")
        if not service:
            raise BadEvent(f"legacy event {event_id}: no service is known for eventType {event_type!r}")
    return service, name


def _per_service(
    service: str, body: Mapping[str, Any], data: Any, name: str, subject: str | None, event_id: str
) -> tuple[Any, str, str | None]:
    """What the CloudEvent form of each service changes: the data, the source's name, the subject."""
    if service == "pubsub.googleapis.com":
        message = dict(data) if isinstance(data, Mapping) else {"data": data}
        message.setdefault("messageId", event_id)
        timestamp = _context(body).get("timestamp")
        if timestamp is not None:
            message.setdefault("publishTime", timestamp)
        data = {"message": message}
    elif service == "firebaseauth.googleapis.com" and isinstance(data, dict):
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            data["metadata"] = {_AUTH_METADATA.get(k, k): v for k, v in metadata.items()}
        if "uid" in data:
            subject = f"users/{data['uid']}"
    elif service == "firebasedatabase.googleapis.com":
        domain = body.get("domain")
        if not isinstance(domain, str) or not domain:
            raise BadEvent(f"legacy event {event_id}: a Firebase Realtime Database event needs 'domain'")
        location = "us-central1" if domain == "firebaseio.com" else domain.split(".", 1)[0]
        name = f"projects/_/locations/{location}/{name}"
    elif service == "firebaseanalytics.googleapis.com":
        app_id = _path(data, "userDim", "appInfo", "appId")
        if isinstance(app_id, str):
            name = f"{name}/apps/{app_id}"
    return data, name, subject


def _context(body: Mapping[str, Any]) -> Mapping[str, Any]:
    context = body.get("context")
    return context if isinstance(context, Mapping) else body


def _path(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadEvent(f"timestamp {value!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- Pub/Sub push ---------------------------------------------------------------------------


def is_push_envelope(body: Any) -> bool:
    """Whether a JSON body is a Pub/Sub push delivery (wrapped, not ``--push-no-wrapper``)."""
    return (
        isinstance(body, Mapping)
        and isinstance(body.get("message"), Mapping)
        and isinstance(body.get("subscription"), str)
        and "context" not in body
    )


def push_message(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope's message with ``messageId`` and ``publishTime`` (push sends both spellings)."""
    message = dict(envelope["message"])
    for camel, snake in (("messageId", "message_id"), ("publishTime", "publish_time")):
        if camel not in message and snake in message:
            message[camel] = message[snake]
    if not isinstance(message.get("messageId"), str) or not message["messageId"]:
        raise BadEvent("Pub/Sub push: message.messageId is missing")
    return message


def push_event(envelope: Mapping[str, Any], *, topic: str | None = None) -> CloudEvent:
    """A push delivery as Eventarc would send it: ``messagePublished`` with the envelope as data.

    Args:
        topic: ``projects/P/topics/T`` when known (the envelope names only the
            subscription); the source is the subscription otherwise.
    """
    if storage_notification(envelope):
        return storage_notification_event(envelope)
    message = push_message(envelope)
    subscription = str(envelope["subscription"])
    data: dict[str, Any] = {"message": message, "subscription": subscription}
    if "deliveryAttempt" in envelope:
        data["deliveryAttempt"] = envelope["deliveryAttempt"]
    return CloudEvent(
        type=PUBSUB_PUBLISHED,
        source=f"//pubsub.googleapis.com/{topic or subscription}",
        id=message["messageId"],
        time=_time(message.get("publishTime")),
        data=data,
        datacontenttype="application/json",
        original=envelope,
    )


# -- Cloud Storage notifications (through Pub/Sub) ------------------------------------------

_STORAGE_TYPES = {
    "OBJECT_FINALIZE": "google.cloud.storage.object.v1.finalized",
    "OBJECT_DELETE": "google.cloud.storage.object.v1.deleted",
    "OBJECT_ARCHIVE": "google.cloud.storage.object.v1.archived",
    "OBJECT_METADATA_UPDATE": "google.cloud.storage.object.v1.metadataUpdated",
}


def storage_notification(envelope: Mapping[str, Any]) -> bool:
    """Whether a push delivery is a Cloud Storage notification (its attributes say so)."""
    attributes = _attributes(envelope)
    event_type = attributes.get("eventType")
    return (
        isinstance(event_type, str)
        and event_type in _STORAGE_TYPES
        and "bucketId" in attributes
        and "objectId" in attributes
    )


def _attributes(envelope: Mapping[str, Any]) -> Mapping[str, Any]:
    message = envelope.get("message")
    attributes = message.get("attributes") if isinstance(message, Mapping) else None
    return attributes if isinstance(attributes, Mapping) else {}


def storage_notification_event(envelope: Mapping[str, Any]) -> CloudEvent:
    """A Cloud Storage notification as the ``google.cloud.storage.object.v1.*`` event Eventarc sends.

    The data is the object resource (``payloadFormat=JSON_API_V1``) or, with
    ``payloadFormat=NONE``, the bucket, name and generation from the attributes.
    """
    import base64
    import json

    message = push_message(envelope)
    attributes = _attributes(envelope)
    bucket, name = str(attributes["bucketId"]), str(attributes["objectId"])
    data: Any = None
    raw = message.get("data")
    if attributes.get("payloadFormat") == "JSON_API_V1" and isinstance(raw, str) and raw:
        try:
            data = json.loads(base64.b64decode(raw, validate=True))
        except (ValueError, TypeError) as exc:
            raise BadEvent(f"storage notification {message['messageId']}: the payload is not JSON: {exc}") from None
    if data is None:
        data = {"bucket": bucket, "name": name}
        if "objectGeneration" in attributes:
            data["generation"] = attributes["objectGeneration"]
    return CloudEvent(
        type=_STORAGE_TYPES[str(attributes["eventType"])],
        source=f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        subject=f"objects/{name}",
        id=message["messageId"],
        time=_time(attributes.get("eventTime") or message.get("publishTime")),
        data=data,
        datacontenttype="application/json",
        original=envelope,
    )


# -- CloudEvents over HTTP ------------------------------------------------------------------


def is_cloudevent(headers: Mapping[str, str]) -> bool:
    """Binary mode (a ``ce-specversion`` header) or structured mode (``application/cloudevents+json``)."""
    if "ce-specversion" in headers:
        return True
    return headers.get("content-type", "").split(";", 1)[0].strip().lower() == "application/cloudevents+json"


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """A CloudEvent in binary or structured mode, through the ``cloudevents`` SDK (2.x).

    Args:
        headers: lower-case names.
    """
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    # the SDK parses what anyone may send and raises several types (AttributeError on a
    # body of ``null``): any error from it means the request is not a CloudEvent
    try:
        sdk = from_http_event(HTTPMessage(dict(headers), body))
    except Exception as exc:
        relaxed = None if "ce-specversion" in headers else _lowercase_extensions(body)
        if relaxed is None:
            raise BadEvent(f"not a valid CloudEvent: {exc}") from None
        # Google's structured examples spell some extensions in camelCase (audit logs'
        # methodName, serviceName); CloudEvents names are lower-case, as binary mode sends them
        try:
            sdk = from_http_event(HTTPMessage(dict(headers), relaxed))
        except Exception:
            raise BadEvent(f"not a valid CloudEvent: {exc}") from None
    event = CloudEvent.from_sdk(sdk)
    time = event.time
    if time is not None and time.tzinfo is not None and time.utcoffset() == UTC.utcoffset(None):
        event = _with_time(event, time.astimezone(UTC))
    return _with_original(event, sdk)


_NOT_EXTENSIONS = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema", "data", "data_base64"}
)


def _lowercase_extensions(body: bytes) -> bytes | None:
    """A structured event with its extension names made valid (lower-case letters and digits), or None."""
    import json

    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    renamed = {
        (key if key in _NOT_EXTENSIONS else re.sub(r"[^a-z0-9]", "", key.lower())): value
        for key, value in document.items()
    }
    if renamed.keys() == document.keys() or len(renamed) != len(document):
        return None
    return json.dumps(renamed).encode()


def _with_time(event: CloudEvent, time: datetime) -> CloudEvent:
    from ...resources.records import replace

    return replace(event, time=time)


def _with_original(event: CloudEvent, original: Any) -> CloudEvent:
    from ...resources.records import replace

    return replace(event, original=original)
