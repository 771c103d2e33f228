"""W3C trace context flows from an incoming request into messages and out into the
subscriber's span, on every queue and topic provider the conformance suites run on
(the embedded ones and every cloud family's, each on its real server)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind

import overcast
from conformance.providers import CASES, Case
from overcast.runtime.dispatch import deliver

from .conftest import Recorded

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

MESSAGING = [case for case in CASES if case.kind in ("queue", "topic")]


@pytest.mark.parametrize("case", MESSAGING, ids=[c.title or f"{c.kind}-{c.scheme}" for c in MESSAGING])
def test_trace_context_crosses_the_provider(
    case: Case, recorded: Recorded, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if case.server is not None:
        request.getfixturevalue(case.server)
    url = case.url(tmp_path, f"{case.kind}-{uuid.uuid4().hex[:10]}")
    name = "events"
    (tmp_path / "overcast.toml").write_text(f'[targets.local]\n{case.kind}.{name} = "{url}"\n')
    app = overcast.App(f"p{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    source: Any = app.topic(name) if case.kind == "topic" else app.queue(name)
    seen: list[str] = []

    @app.subscribe(source)
    async def handler(event: overcast.CloudEvent) -> None:
        from opentelemetry import trace

        seen.append(f"{trace.get_current_span().get_span_context().trace_id:032x}")

    async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if case.kind == "topic":
            await source.publish({"n": 1})
        else:
            await source.send({"n": 1})
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app.http(endpoint)
    subscription = app.subscriptions[0]

    async def scenario() -> None:
        await app.provision()
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.post("/signup", headers={"traceparent": PARENT})
            assert response.status_code == 204
        queue = source.subscription(subscription.name) if case.kind == "topic" else source
        for _ in range(100):
            messages = await queue.receive(wait=1)
            if messages:
                break
        else:
            raise AssertionError(f"no message arrived on {url}")
        (message,) = messages
        assert message.attributes["traceparent"].split("-")[1] == TRACE_ID
        outcome = await deliver(subscription, queue, message, app=app.name)
        assert outcome.outcome == "ok"

    asyncio.run(scenario())
    assert seen == [TRACE_ID]
    spans = recorded.spans.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    consumer = next(s for s in spans if s.kind == SpanKind.CONSUMER)
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert consumer.context.trace_id == server.context.trace_id
    assert consumer.parent is not None
    sent = [s for s in spans if s.kind == SpanKind.CLIENT and s.name.endswith(("send", "publish"))]
    assert sent and all(s.context.trace_id == server.context.trace_id for s in sent)
