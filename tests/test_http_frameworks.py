"""``app.http()`` with FastAPI, Starlette, Flask and Django, all answering through ``app.asgi``.

Each app writes and reads a KV handle: the async face from async frameworks, the
``.sync`` face from WSGI views.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import overcast

ROOT = Path(__file__).resolve().parent.parent


def new_app(tmp_path: Path) -> overcast.App:
    (tmp_path / "overcast.toml").write_text('[app]\nentry = "app:app"\n\n[targets.local]\n')
    app = overcast.App("web", config=tmp_path / "overcast.toml")
    return app


async def exercise(asgi: Any) -> None:
    """PUT then GET a note through the app, and a 404 for one never written."""
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        put = await http.put("/notes/n1", json={"text": "héllo"})
        assert put.status_code == 200, put.text
        assert put.json()["version"]
        got = await http.get("/notes/n1")
        assert got.status_code == 200, got.text
        assert got.json() == {"text": "héllo"}
        assert (await http.get("/notes/missing")).status_code == 404


@pytest.fixture(autouse=True)
def _local_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    monkeypatch.delenv("OVERCAST_CONFIG", raising=False)


def test_fastapi(tmp_path: Path) -> None:
    from fastapi import FastAPI, HTTPException

    app = new_app(tmp_path)
    notes = app.kv("notes")
    api = FastAPI()
    assert app.http(api) is api

    @api.put("/notes/{key}")  # type: ignore[untyped-decorator]
    async def put_note(key: str, body: dict[str, Any]) -> dict[str, str]:
        return {"version": await notes.put(key, body)}

    @api.get("/notes/{key}")  # type: ignore[untyped-decorator]
    async def get_note(key: str) -> dict[str, Any]:
        item = await notes.get(key)
        if item is None:
            raise HTTPException(404)
        return item.value

    anyio.run(exercise, app.asgi)
    assert app.asgi.app is api  # as given, behind only the health route
    assert notes.used == {"read", "write"}


def test_starlette(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    app = new_app(tmp_path)
    notes = app.kv("notes")

    async def note(request: Request) -> JSONResponse:
        key = request.path_params["key"]
        if request.method == "PUT":
            return JSONResponse({"version": await notes.put(key, await request.json())})
        item = await notes.get(key)
        return JSONResponse(item.value) if item else JSONResponse({"error": "not found"}, status_code=404)

    app.http(Starlette(routes=[Route("/notes/{key}", note, methods=["GET", "PUT"])]))
    anyio.run(exercise, app.asgi)


def test_flask_through_a2wsgi(tmp_path: Path) -> None:
    from a2wsgi import WSGIMiddleware
    from flask import Flask, abort, request

    app = new_app(tmp_path)
    notes = app.kv("notes")
    web = Flask(__name__)

    @web.put("/notes/<key>")
    def put_note(key: str) -> dict[str, str]:
        return {"version": notes.sync.put(key, request.get_json())}

    @web.get("/notes/<key>")
    def get_note(key: str) -> dict[str, Any]:
        item = notes.sync.get(key)
        if item is None:
            abort(404)
        return item.value

    app.http(web)
    assert isinstance(app.asgi.app, WSGIMiddleware)
    anyio.run(exercise, app.asgi)
    assert notes.used == {"read", "write"}


DJANGO_APP = """
import json, sys
from pathlib import Path

import anyio
import django
from django.conf import settings
from django.http import Http404, JsonResponse
from django.urls import path

import overcast

folder = Path(sys.argv[1])
settings.configure(
    DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
    MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={},
)
django.setup()

app = overcast.App("web", config=folder / "overcast.toml")
notes = app.kv("notes")


def note(request, key):
    if request.method == "PUT":
        return JsonResponse({"version": notes.sync.put(key, json.loads(request.body))})
    item = notes.sync.get(key)
    if item is None:
        raise Http404(key)
    return JsonResponse(item.value)


urlpatterns = [path("notes/<str:key>", note)]

from django.core.wsgi import get_wsgi_application

app.http(get_wsgi_application())
sys.path.insert(0, sys.argv[2])
from test_http_frameworks import exercise

anyio.run(exercise, app.asgi)
print(json.dumps(sorted(notes.used)))
"""


def test_django_through_a2wsgi(tmp_path: Path) -> None:
    # Django's settings are process-global: run it in a process of its own.
    new_app(tmp_path)
    script = tmp_path / "django_site.py"
    script.write_text(textwrap.dedent(DJANGO_APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERCAST_", "DJANGO_"))}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(ROOT / "tests")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["read", "write"]
