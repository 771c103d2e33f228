"""What is common to inbound events on every cloud: CloudEvent, schedules, ASGI glue."""

from .cloudevent import CloudEvent

__all__ = ["CloudEvent"]
