"""CloudEvents 1.0: the one shape in which every inbound event reaches a handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["CloudEvent"]


@dataclass(frozen=True, slots=True)
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
