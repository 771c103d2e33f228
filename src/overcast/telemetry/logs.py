"""Structured JSON logs with the same fields on every cloud, secrets redacted.

Each line holds ``time``, ``level``, ``message``, ``logger``, ``request_id``, ``trace_id``,
``span_id``, ``target``, ``cloud``, ``function`` and ``cold_start`` (and ``exception``);
on Google Cloud also ``severity`` and ``logging.googleapis.com/trace``/``spanId`` so Cloud
Logging correlates lines with traces. Values read through ``app.secret`` never appear.

    import logging
    from overcast.telemetry.logs import install
    install(cloud="aws", function="users-api")      # JSON on stderr for the root logger
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from . import _state

__all__ = ["JsonFormatter", "RedactingFilter", "install", "request_id"]

#: The current invocation's request id (the runtimes set it: Lambda's aws_request_id, ...).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("overcast_request_id", default=None)

_cold = {"start": True}


def mark_warm() -> None:
    """Called by the runtimes after a process's first invocation."""
    _cold["start"] = False


class RedactingFilter(logging.Filter):
    """Replace secret values in a record's message and arguments (attach to any handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _state.secrets:
            message = record.getMessage()
            cleaned = _state.redact_text(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


def _cloud_log_fields(cloud: str | None) -> Any:
    """The function adding ``cloud``'s own fields to a line (its family declares it), or None."""
    if not cloud or cloud == "local":
        return None
    from ..resources.registry import family_of_cloud, load_attribute

    family = family_of_cloud(cloud)
    return load_attribute(family.log_fields) if family and family.log_fields else None


class JsonFormatter(logging.Formatter):
    def __init__(self, *, target: str | None = None, cloud: str | None = None, function: str | None = None) -> None:
        super().__init__()
        self.target = target or os.environ.get("OVERCAST_TARGET") or "local"
        self.cloud = cloud or _state.instruments.cloud
        self.function = (
            function
            or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
            or os.environ.get("K_SERVICE")
            or (os.environ.get("WEBSITE_SITE_NAME"))
        )
        self._cloud_fields = _cloud_log_fields(self.cloud)

    def format(self, record: logging.LogRecord) -> str:
        trace_id = span_id = None
        if _state.ENABLED and _state.instruments.otel:
            from opentelemetry import trace

            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "request_id": request_id.get(),
            "trace_id": trace_id,
            "span_id": span_id,
            "target": self.target,
            "cloud": self.cloud,
            "function": self.function,
            "cold_start": _cold["start"],
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if self._cloud_fields is not None:
            line.update(self._cloud_fields(record.levelname, trace_id, span_id))
        text = json.dumps(line, default=str, ensure_ascii=False)
        return _state.redact_text(text) if _state.secrets else text


def install(
    *, target: str | None = None, cloud: str | None = None, function: str | None = None, level: int = logging.INFO
) -> logging.Handler:
    """Send the root logger's records to stderr as JSON lines, secrets redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(target=target, cloud=cloud, function=function))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
