"""Per-request overhead of the Azure Functions HTTP function against calling the ASGI app directly.

The same FastAPI app (``GET /users/{id}`` answering a small JSON document) is driven in one
event loop, as the Functions worker runs async functions, three ways:

* ``function``: the ``http`` function of ``function_app(app)`` given a ``func.HttpRequest``
  (built once, as the worker would have) and returning a ``func.HttpResponse``;
* ``AsgiMiddleware``: azure-functions' own adapter, ``AsgiMiddleware(api).handle_async``;
* ``ASGI direct``: the app called with a ready scope and the least possible receive/send.

The ratio is what the adapter adds to the app's own time per request. Goal: report it.

    .venv/bin/python benchmarks/azure_functions.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, report


def build() -> tuple[Any, Any, Any, Any]:
    import azure.functions as func
    from fastapi import FastAPI

    import overcast
    from overcast.providers.azure import function_app

    folder = Path(tempfile.mkdtemp(prefix="azf-bench-"))
    (folder / "overcast.toml").write_text('[targets.azure]\ndefaults.kv = "memory://{name}"\n')
    os.environ["OVERCAST_TARGET"] = "azure"
    app = overcast.App("bench", config=folder / "overcast.toml")
    api = FastAPI()

    @api.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, Any]:
        return {"id": user_id, "name": "Ada", "email": "ada@example.com"}

    app.http(api)
    fa = function_app(app, lifespan="off")
    http = next(f for f in fa.get_functions() if f.get_function_name() == "http").get_user_function()
    request = func.HttpRequest(
        "GET",
        "https://bench.azurewebsites.net/users/u-1?fields=all",
        headers={"host": "bench.azurewebsites.net", "accept": "application/json", "user-agent": "bench"},
        params={"fields": "all"},
        route_params={"route": "users/u-1"},
        body=b"",
    )
    middleware = func.AsgiMiddleware(api)
    return api, http, request, middleware


async def direct(api: Any) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/users/u-1",
        "raw_path": b"/users/u-1",
        "query_string": b"fields=all",
        "root_path": "",
        "headers": [(b"host", b"bench.azurewebsites.net"), (b"accept", b"application/json"), (b"user-agent", b"bench")],
        "client": None,
        "server": ("bench.azurewebsites.net", 443),
    }
    sent = False
    out: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    await api(scope, receive, send)
    assert out[0]["status"] == 200


def main() -> None:
    args = arguments(__doc__ or "")
    rounds, per_round = (3, 200) if args.quick else (15, 2000)
    api, http, request, middleware = build()
    loop = asyncio.new_event_loop()

    async def check() -> None:
        response = await http(request, None)
        assert response.status_code == 200 and b'"id":"u-1"' in response.get_body(), response.get_body()

    loop.run_until_complete(check())

    def timed(make: Any) -> Any:
        async def batch() -> None:
            for _ in range(per_round):
                await make()

        def run() -> float:
            started = time.perf_counter()
            loop.run_until_complete(batch())
            return (time.perf_counter() - started) / per_round * 1e6

        return run

    ours = Result("function", "us")
    theirs = Result("AsgiMiddleware", "us")
    base = Result("direct", "us")
    base2 = Result("direct", "us")
    interleave(
        rounds,
        (ours, timed(lambda: http(request, None))),
        (base, timed(lambda: direct(api))),
        (theirs, timed(lambda: middleware.handle_async(request, None))),
        (base2, timed(lambda: direct(api))),
    )
    loop.close()
    report(
        f"Azure Functions HTTP per request ({rounds} rounds x {per_round} requests, FastAPI, one event loop)",
        [
            ("http function vs ASGI direct", ours, base, "report"),
            ("AsgiMiddleware vs ASGI direct", theirs, base2, "(reference)"),
        ],
    )
    added, added_theirs = ours.median - base.median, theirs.median - base2.median
    print(f"\nadded per request: {added:.1f} us (ours), {added_theirs:.1f} us (AsgiMiddleware)")


if __name__ == "__main__":
    main()
