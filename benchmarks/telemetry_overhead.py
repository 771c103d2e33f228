"""What telemetry costs: the same work with it off and on, in one run.

1. A provider call (memory KV get): off, on (metrics), on (metrics and spans).
2. An HTTP request through ``app.asgi`` on a bare Starlette route, against calling
   the route's ASGI app directly: the time each adds, off and on.
3. When the AWS runtime is installed, a warm Lambda invocation through
   ``lambda_handler`` (API Gateway v2 event): its added time over the bare ASGI app,
   off and on, alternating in blocks of 50 calls and timed in the thread's CPU time (the
   figure is a difference of differences of a few µs, which wall-clock time on a shared
   machine swamps). Goal: telemetry on adds at most 10% to the adapter's overhead.

    .venv/bin/python benchmarks/telemetry_overhead.py [--quick]
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from _common import Result, arguments, interleave, report
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import overcast
from overcast import telemetry
from overcast.telemetry import _state


def per_call_us(n: int, func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        func()
    return (time.perf_counter() - start) / n * 1e6


def switch(mode: str) -> None:
    telemetry.shutdown()
    if mode == "off":
        return
    spans = [SimpleSpanProcessor(InMemorySpanExporter())] if mode == "traced" else []
    telemetry.configure(metric_readers=[InMemoryMetricReader()], span_processors=spans, set_global=False)


def measured(mode: str, n: int, func: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        switch(mode)
        try:
            return per_call_us(n, func)
        finally:
            telemetry.shutdown()

    return run


async def _hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


def main() -> None:
    args = arguments(__doc__ or "")
    n = 2_000 if args.quick else 20_000
    rounds = 3 if args.quick else 15

    kv = overcast.open_kv(f"memory://bench-{uuid.uuid4().hex[:6]}", name="bench")
    kv.sync.put("k", {"v": 1})
    get = lambda: kv.sync.get("k")  # noqa: E731
    kv_off, kv_on, kv_traced = Result("off", "us"), Result("on", "us"), Result("traced", "us")
    interleave(
        rounds,
        (kv_off, measured("off", n, get)),
        (kv_on, measured("on", n, get)),
        (kv_traced, measured("traced", n, get)),
    )

    app = overcast.App(f"bench{uuid.uuid4().hex[:6]}")
    route = Starlette(routes=[Route("/", _hello)])
    app.http(route)
    loop = asyncio.new_event_loop()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"x")],
        "server": ("x", 80),
        "client": ("127.0.0.1", 1),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    def call(asgi: Any) -> Callable[[], None]:
        return lambda: loop.run_until_complete(asgi(dict(scope), receive, send))

    direct, http_off = Result("direct", "us"), Result("off", "us")
    http_on, http_traced = Result("on", "us"), Result("traced", "us")
    interleave(
        rounds,
        (direct, measured("off", n // 4, call(route))),
        (http_off, measured("off", n // 4, lambda: call(app.asgi)())),
        (http_on, measured("on", n // 4, lambda: call(app.asgi)())),
        (http_traced, measured("traced", n // 4, lambda: call(app.asgi)())),
    )
    rows = [
        ("memory KV get, metrics on", kv_on, kv_off, "(reported)"),
        ("memory KV get, metrics + spans", kv_traced, kv_off, "(reported)"),
        ("app.asgi request, telemetry off", http_off, direct, "(reported)"),
        ("app.asgi request, metrics on", http_on, direct, "(reported)"),
        ("app.asgi request, metrics + spans", http_traced, direct, "(reported)"),
    ]
    lambda_rows = _lambda(loop, app, call(route), rounds, n // 4)
    report(f"Telemetry off vs on ({n} calls per round, median of {rounds} rounds, time per call)", rows + lambda_rows)
    if lambda_rows:
        _, on, off, _ = lambda_rows[0]
        _, _, bare, _ = lambda_rows[1]
        adapter = off.median - bare.median
        added = on.median - off.median
        print(
            f"\nlambda_handler adds {adapter:.1f} us over the bare ASGI app; telemetry on adds {added:+.1f} us "
            f"more: {added / adapter * 100:.0f}% of the adapter's overhead (goal: at most 10%)"
        )
    print(
        f"\nadded per provider call: metrics {kv_on.median - kv_off.median:+.2f} us, "
        f"metrics + spans {kv_traced.median - kv_off.median:+.2f} us"
    )
    loop.close()


def _lambda(
    loop: Any, app: Any, bare: Callable[[], None], rounds: int, n: int
) -> list[tuple[str, Result, Result, str]]:
    try:
        from overcast.providers.aws import lambda_handler
    except Exception as exc:  # the AWS runtime is optional here
        print(f"(lambda_handler not measured: {exc})")
        return []
    handler = lambda_handler(app)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"host": "x"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench",
            },
            "requestId": "r",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }

    class Context:
        aws_request_id = "bench"
        function_name = "bench"

    # The three alternate in blocks of 50 calls, in turn, within each round, timed in this
    # thread's CPU time: a burst of other work on the shared machine hits all three alike. Telemetry stays configured;
    # "off" is its flag down, which is all the hot path reads.
    direct, off, on = Result("direct", "us"), Result("off", "us"), Result("on", "us")
    switch("on")
    clock = time.thread_time  # CPU time of this thread: time other processes take is not counted
    block = 50
    try:
        for _ in range(rounds):
            spent = {"direct": 0.0, "off": 0.0, "on": 0.0}
            for turn in range(n // block):
                order = ("direct", "off", "on")[turn % 3 :] + ("direct", "off", "on")[: turn % 3]
                for mode in order:
                    _state.ENABLED = mode == "on"
                    start = clock()
                    if mode == "direct":
                        for _ in range(block):
                            bare()
                    else:
                        for _ in range(block):
                            handler(event, Context())
                    spent[mode] += clock() - start
            calls = (n // block) * block
            for result, mode in ((direct, "direct"), (off, "off"), (on, "on")):
                result.samples.append(spent[mode] / calls * 1e6)
    finally:
        telemetry.shutdown()
    return [
        ("lambda_handler, telemetry on vs off", on, off, "(see below)"),
        ("lambda_handler off vs the bare app", off, direct, "(reported)"),
    ]


if __name__ == "__main__":
    main()
