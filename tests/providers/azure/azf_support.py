"""What the Azure Functions Python worker does around a function, with azure-functions' own
converters: trigger data (``meta.Datum`` and trigger metadata, as the host sends them over
gRPC) to the real ``func.*`` types, and an ``HttpResponse`` back to what the host gets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions import meta
from azure.functions.blob import BlobConverter
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.http import HttpRequestConverter, HttpResponseConverter
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequestConverter

import overcast

CONFIG = """
[app]
entry = "demo_app:app"

[targets.azure]
defaults.queue = "azqueue://{app}-{name}"
defaults.topic = "azqueue://{app}-{name}"
defaults.bucket = "azblob://{app}-{name}/files"
defaults.kv = "memory://{name}"
"""


def make_app(folder: Path, name: str = "demo") -> overcast.App:
    """An App on target ``azure`` (set OVERCAST_TARGET=azure) with Azure URLs by default."""
    (folder / "overcast.toml").write_text(CONFIG)
    return overcast.App(name, config=folder / "overcast.toml")


class Context:
    """The worker's ``func.Context`` (only what the functions read)."""

    def __init__(self, name: str = "http", invocation_id: str = "inv-1") -> None:
        self.function_name = name
        self.invocation_id = invocation_id
        self.function_directory = "/home/site/wwwroot"
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = None


def http_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    route_params: dict[str, str] | None = None,
) -> func.HttpRequest:
    d = meta.Datum
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    value = {
        "method": d(method, "string"),
        "url": d(url, "string"),
        "headers": {k: d(v, "string") for k, v in (headers or {}).items()},
        "query": {k: d(v, "string") for k, v in query.items()},
        "params": {k: d(v, "string") for k, v in (route_params or {}).items()},
        "body": d(body, "bytes"),
    }
    request: func.HttpRequest = HttpRequestConverter.decode(d(value, "http"), trigger_metadata={})
    return request


def host_response(response: func.HttpResponse) -> dict[str, Any]:
    """What the host receives: status, headers (a map), cookies and body."""
    datum = HttpResponseConverter.encode(response, expected_type=None)
    value = datum.value
    return {
        "status": int(value["status_code"].value),
        "headers": {k: v.value for k, v in value["headers"].items()},
        "cookies": [c.output(header="").strip() for c in value["cookies"] or []],
        "body": value["body"].value,
    }


def queue_message(body: str | bytes, *, id: str = "m-1", dequeue_count: int = 1) -> func.QueueMessage:
    d = meta.Datum
    metadata = {
        "Id": d(id, "string"),
        "DequeueCount": d(str(dequeue_count), "string"),
        "PopReceipt": d("AgAAAAMAAAAAAAAA", "string"),
        "InsertionTime": d("2026-11-22T20:00:00+00:00", "string"),
        "ExpirationTime": d("2026-11-29T20:00:00+00:00", "string"),
        "NextVisibleTime": d("2026-11-22T20:00:30+00:00", "string"),
    }
    data = d(body, "bytes" if isinstance(body, bytes) else "string")
    message: func.QueueMessage = QueueMessageInConverter.decode(data, trigger_metadata=metadata)
    return message


def event_grid_event(event: dict[str, Any]) -> Any:
    """One event as the Event Grid trigger gives it (the host splits the array)."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata={})


def input_stream(name: str, content: bytes, *, uri: str, properties: dict[str, Any], metadata: dict[str, str]) -> Any:
    d = meta.Datum
    trigger_metadata = {
        "BlobTrigger": d(name, "string"),
        "Uri": d(uri, "string"),
        "Properties": d(json.dumps(properties), "json"),
        "Metadata": d(json.dumps(metadata), "json"),
    }
    return BlobConverter.decode(d(content, "bytes"), trigger_metadata=trigger_metadata)


def timer_request(past_due: bool = False) -> func.TimerRequest:
    info = {"IsPastDue": past_due, "ScheduleStatus": {}, "Schedule": {"AdjustForDST": True}}
    timer: func.TimerRequest = TimerRequestConverter.decode(meta.Datum(json.dumps(info), "json"), trigger_metadata={})
    return timer


def functions_by_name(fa: func.FunctionApp) -> dict[str, Any]:
    return {f.get_function_name(): f for f in fa.get_functions()}


class Worker:
    """Calls the app's functions on one event loop, as the worker does for async functions."""

    def __init__(self, fa: func.FunctionApp) -> None:
        self.fa = fa
        self.functions = functions_by_name(fa)
        self.loop = asyncio.new_event_loop()

    def call(self, name: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.functions[name].get_user_function()(*args))

    def close(self) -> None:
        """Stop the app's lifespan and every task left, then the loop (the worker never does)."""
        loop = self.loop
        loop.run_until_complete(self.fa.overcast.http.shutdown())  # type: ignore[attr-defined]
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending))
        loop.close()
