"""Structured JSON logs: the same fields everywhere, trace ids from the current span, and
values read through app.secret redacted in logs and in metric attributes."""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.telemetry import _state
from overcast.telemetry.logs import JsonFormatter, RedactingFilter, request_id

from .conftest import Recorded

FIELDS = {
    "time",
    "level",
    "message",
    "logger",
    "request_id",
    "trace_id",
    "span_id",
    "target",
    "cloud",
    "function",
    "cold_start",
}


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"overcast-test-{uuid.uuid4().hex[:6]}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream


def test_every_line_has_the_same_fields_and_the_current_trace(recorded: Recorded) -> None:
    logger, stream = _logger(JsonFormatter(target="aws", cloud="aws", function="users-api"))
    token = request_id.set("req-42")
    try:
        with _state.instruments.tracer.start_as_current_span("work") as span:
            logger.info("hello %s", "world")
    finally:
        request_id.reset(token)
    line = json.loads(stream.getvalue())
    assert set(line) >= FIELDS
    assert line["message"] == "hello world" and line["level"] == "INFO"
    assert line["request_id"] == "req-42"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert (line["target"], line["cloud"], line["function"]) == ("aws", "aws", "users-api")


def test_google_lines_carry_cloud_loggings_trace_fields(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-1")
    logger, stream = _logger(JsonFormatter(cloud="gcp"))
    with _state.instruments.tracer.start_as_current_span("work") as span:
        logger.warning("careful")
    line = json.loads(stream.getvalue())
    assert line["severity"] == "WARNING"
    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert line["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{trace_id}"


def test_a_secret_read_through_the_app_never_reaches_logs_or_metrics(
    recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("DB_PASSWORD", password)
    (tmp_path / "overcast.toml").write_text('[targets.local]\ndefaults.secret = "env://"\n')
    app = overcast.App(f"r{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    assert app.secret("db-password").sync.get() == password

    plain, plain_stream = _logger(logging.Formatter("%(message)s"))
    plain.info("connecting with %s", password)
    structured, json_stream = _logger(JsonFormatter())
    try:
        raise ValueError(f"login failed for {password}")
    except ValueError:
        structured.exception("boom %s", password)
    assert password not in plain_stream.getvalue() and "[REDACTED]" in plain_stream.getvalue()
    assert password not in json_stream.getvalue() and "[REDACTED]" in json_stream.getvalue()

    leaky = overcast.open_kv(f"memory://leak-{uuid.uuid4().hex[:6]}", name=f"store-{password}")
    leaky.sync.put("k", {"v": 1})
    names = {p.attributes["resource"] for p in recorded.points("overcast.upstream.duration")}
    assert all(password not in name for name in names)
    assert "store-[REDACTED]" in names
