"""What is common to inbound work on every runtime: CloudEvents, the router, delivery
and settling (``dispatch``), schedules, the ASGI lifespan and the buffered ASGI runner."""

from .cloudevent import CloudEvent

__all__ = ["CloudEvent"]
