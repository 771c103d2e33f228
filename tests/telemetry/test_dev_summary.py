"""overcast dev prints one line per request with each upstream call and its time."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import httpx
from rich.console import Console
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import overcast
from overcast import telemetry
from overcast.providers.local.devserver import print_request
from overcast.telemetry import runtime as telemetry_runtime


def test_each_request_is_printed_with_its_upstream_calls(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text('[targets.local]\ndefaults.kv = "sqlite:///{name}.db"\n')
    app = overcast.App(f"d{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    users = app.kv("users")

    async def show(request: object) -> JSONResponse:
        item = await users.get("ada")
        return JSONResponse({"found": item is not None}, status_code=200 if item else 404)

    app.http(Starlette(routes=[Route("/users/ada", show)]))
    out = io.StringIO()
    telemetry.summarize_requests(print_request(Console(file=out, width=200, color_system=None)))
    try:

        async def scenario() -> int:
            transport = httpx.ASGITransport(app=app.asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
                return (await client.get("/users/ada")).status_code

        assert asyncio.run(scenario()) == 404
    finally:
        telemetry.summarize_requests(None)
    first, second = out.getvalue().splitlines()
    assert "GET /users/ada 404" in first and first.endswith(" ms")
    assert "↳ sqlite get users" in second and second.endswith(" ms")


def test_every_call_reaches_the_call_listener_inside_requests_or_not(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text('[targets.local]\ndefaults.kv = "sqlite:///{name}.db"\n')
    app = overcast.App(f"d{uuid.uuid4().hex[:8]}", config=tmp_path / "overcast.toml")
    users = app.kv("users")

    async def show(request: object) -> JSONResponse:
        await users.put("ada", {"n": 1})
        return JSONResponse({})

    app.http(Starlette(routes=[Route("/users/ada", show)]))
    calls: list[tuple[str, str, str, str, float, bool]] = []
    telemetry.summarize_requests(lambda summary: None)
    telemetry.watch_calls(lambda *call: calls.append(call))  # type: ignore[arg-type]
    try:

        async def scenario() -> None:
            await users.get("outside")  # as a subscriber or a schedule would, outside any request
            transport = httpx.ASGITransport(app=app.asgi)
            async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
                (await client.get("/users/ada")).raise_for_status()

        asyncio.run(scenario())
    finally:
        telemetry.watch_calls(None)
        telemetry.summarize_requests(None)
    seen = [
        (upstream, operation, resource, outcome, in_request)
        for upstream, operation, resource, outcome, _, in_request in calls
    ]
    assert ("sqlite", "get", "users", "ok", False) in seen and ("sqlite", "put", "users", "ok", True) in seen
    assert all(seconds >= 0 for *_, seconds, _ in calls)
    assert not telemetry_runtime.active()  # off again once nobody listens


def test_replication_lags_reach_their_listener_with_telemetry_off() -> None:
    lags: list[tuple[str, str, float]] = []
    telemetry.watch_replication(lambda *lag: lags.append(lag))  # type: ignore[arg-type]
    try:
        assert not telemetry_runtime.active()
        telemetry.replication_lag("ledger", "replica 1", 0.25)
    finally:
        telemetry.watch_replication(None)
    telemetry.replication_lag("ledger", "replica 1", 0.5)  # nobody listens any more
    assert lags == [("ledger", "replica 1", 0.25)]
