"""GET /_overcast/health on a real server (`overcast run` would serve the same App.asgi): the
breakers of replicated resources, 200 while one member answers, 503 when none does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

import overcast
from overcast.resilience.health import inspect
from servers import free_port

APP = """\
import overcast
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

app = overcast.App("health-demo")
users = app.kv("users")


async def get_user(request):
    item = await users.get(request.path_params["id"])
    return JSONResponse(item.value if item else None)


app.http(Starlette(routes=[Route("/users/{id}", get_user)]))
"""


async def _call(app: overcast.App, method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.request(method, "/_overcast/health")


def _app(tmp_path: Path, primary: str) -> overcast.App:
    (tmp_path / "overcast.toml").write_text(
        "[targets.multi]\n"
        f'kv.users = {{ primary = "{primary}", replicas = ["sqlite:///replica.db"], timeout = "1s" }}\n'
    )
    namespace: dict[str, Any] = {}
    exec(APP, namespace)
    app: overcast.App = namespace["app"]
    app.use_config(tmp_path / "overcast.toml")
    return app


def test_health_reports_each_member_and_a_member_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "multi")
    app = _app(tmp_path, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens: the primary is down
    users: Any = app.resources["users"]
    assert asyncio.run(_call(app)).json() == {"status": "ok", "resources": {}}  # nothing opened yet
    for _ in range(3):
        users.sync.put("ada", {"n": 1})  # fails over to the replica; the primary's breaker opens
    reply = asyncio.run(_call(app))
    body = reply.json()
    assert reply.status_code == 200 and body["status"] == "degraded"
    members = body["resources"]["users"]["members"]
    assert [(m["role"], m["provider"], m["breaker"]) for m in members] == [
        ("primary", "redis", "open"),
        ("replica 1", "sqlite", "closed"),
    ]
    assert "127.0.0.1" not in reply.text  # no member address on a public endpoint
    assert asyncio.run(_call(app, "POST")).status_code == 405

    rows = asyncio.run(inspect(users.provider))  # what doctor asks: each member itself
    assert [r["reachable"] for r in rows] == [False, True] and rows[1]["log_depth"] >= 1
    app.reset()


def test_health_is_503_when_no_member_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TARGET", "multi")
    dead = [f"redis://127.0.0.1:{free_port()}/0" for _ in range(2)]
    app = _app(tmp_path, dead[0])
    (tmp_path / "overcast.toml").write_text(
        f'[targets.multi]\nkv.users = {{ primary = "{dead[0]}", replicas = ["{dead[1]}"], timeout = "1s" }}\n'
    )
    app.use_config(tmp_path / "overcast.toml")
    users: Any = app.resources["users"]
    for _ in range(3):
        with pytest.raises(overcast.errors.Unavailable, match="not acknowledged"):
            users.sync.put("ada", {"n": 1})
    reply = asyncio.run(_call(app))
    assert reply.status_code == 503 and reply.json()["status"] == "down"
    app.reset()
