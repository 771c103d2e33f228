"""CloudEvents 1.0: the one shape in which every inbound event reaches a handler."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidArgument
from ..resources.records import field, record

__all__ = ["CloudEvent"]


@record(frozen=True, slots=True)
class CloudEvent:
    """A CloudEvent 1.0 (required attributes, the common optional ones, extensions).

    Attributes:
        original: the provider's payload this event was made from (an SQS record,
            a Pub/Sub envelope, a queue message), kept so nothing is lost.
    """

    type: str
    source: str
    data: Any = None
    id: str = field(default_factory=lambda: _new_id())
    time: datetime | None = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    specversion: str = "1.0"
    extensions: dict[str, Any] = field(default_factory=dict)
    original: Any = field(default=None, compare=False, repr=False)

    def checked(self) -> CloudEvent:
        """This event, if it holds to CloudEvents 1.0 (what the ``cloudevents`` SDK checks);
        else :class:`InvalidArgument` naming the attribute and the event."""
        problems = [f"{name} must be a non-empty string" for name in _REQUIRED if not _text(getattr(self, name))]
        if self.specversion != "1.0":
            problems.append(f"specversion must be '1.0', not {self.specversion!r}")
        for name in ("subject", "datacontenttype", "dataschema"):
            value = getattr(self, name)
            if value is not None and not _text(value):
                problems.append(f"{name} must be a non-empty string or absent")
        if self.time is not None and (not isinstance(self.time, datetime) or self.time.tzinfo is None):
            problems.append(f"time must be a datetime with a time zone, not {self.time!r}")
        for name in self.extensions:
            if name in _ATTRIBUTES or not _EXTENSION.fullmatch(name):
                problems.append(f"extension {name!r} must be lower-case letters and digits, and no attribute's name")
        if problems:
            raise InvalidArgument(f"CloudEvent {self.type!r} from {self.source!r}: {'; '.join(problems)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Structured-mode JSON form (``data`` inline), without ``original``."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        for name in ("subject", "datacontenttype", "dataschema"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.time is not None:
            out["time"] = self.time.isoformat().replace("+00:00", "Z")
        out.update(self.extensions)
        if self.data is not None:
            out["data"] = self.data
        return out

    def to_sdk(self) -> Any:
        """This event as the ``cloudevents`` SDK's (2.x) ``cloudevents.core.v1.event.CloudEvent``."""
        from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

        attributes: dict[str, Any] = {"specversion": self.specversion, "id": self.id, "source": self.source}
        attributes["type"] = self.type
        for name in ("subject", "datacontenttype", "dataschema", "time"):
            value = getattr(self, name)
            if value is not None:
                attributes[name] = value
        attributes.update(self.extensions)
        return SDKCloudEvent(attributes, self.data)

    @classmethod
    def from_sdk(cls, event: Any, *, original: Any = None) -> CloudEvent:
        """An event of the ``cloudevents`` SDK (2.x, any object with ``get_attributes``/``get_data``)."""
        attributes = dict(event.get_attributes())
        core = {name: attributes.pop(name, None) for name in _CORE}
        return cls(
            type=core["type"],
            source=core["source"],
            data=event.get_data(),
            id=core["id"],
            time=core["time"],
            subject=core["subject"],
            datacontenttype=core["datacontenttype"],
            dataschema=core["dataschema"],
            specversion=core["specversion"] or "1.0",
            extensions=attributes,
            original=original,
        )


_CORE = ("type", "source", "id", "time", "subject", "datacontenttype", "dataschema", "specversion")


def _new_id() -> str:
    import uuid  # on first use: uuid imports platform, which ``import overcast`` need not pay for

    return str(uuid.uuid4())


_REQUIRED = ("type", "source", "id")
_ATTRIBUTES = frozenset((*_CORE, "data"))
_EXTENSION = re.compile(r"[a-z0-9]+")


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
