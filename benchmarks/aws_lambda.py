"""The Lambda runtime against Mangum: warm per-invocation overhead and the example's cold start.

Warm: a bare Starlette route (``GET /hello`` answering ``hi``) called three ways in the
same process, in interleaved rounds: the ASGI app directly (a prebuilt scope, run on the
loop), ``lambda_handler(app)``, and ``Mangum(app)``, with an HTTP API (v2) and a REST API
(v1) event. The figure is the time each adapter adds over the direct call; the ratio is
ours over Mangum's (with ``lifespan="off"``, its cheapest setting; its default, ``auto``,
runs the app's lifespan on every invocation). Goal: at most 0.5x. Each call is timed in
the CPU time of this thread (``time.thread_time``): all three run in it, on one event loop,
and on a loaded machine the time other processes take is then left out. The table gives
the best (least) time of many short interleaved rounds, each adapter's less the direct
call's: what other work on the machine cannot inflate (timeit's advice); the line above it
gives the medians of the per-round differences too.

Cold start: a fresh interpreter imports the handler module and answers its first request,
``GET /users/{id}`` reading one item from DynamoDB on moto's server: the users example's
``lambda_function.handler`` (FastAPI + Overcast) against the same route hand-written with
FastAPI, Mangum and boto3. Measured inside the subprocess from before the first import
to the reply. Goal: at most 0.8x. Every module's bytecode is cached for both (a pycache
prefix in a temporary folder, filled by one warm-up probe of each), as in a deployment
package that pip installed: Lambda's file system is read-only, so nothing compiled at
run time is kept, and a package without its .pyc files is compiled on every cold start.
A third probe runs the example with ``OVERCAST_DYNAMODB_CLIENT=botocore``: what the
botocore-free DynamoDB client saves.

    .venv/bin/python benchmarks/aws_lambda.py [--quick]
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, report

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "aws"
sys.path.insert(0, str(ROOT / "tests"))


class Context:
    aws_request_id = "bench"


def _event(name: str, path: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    if event.get("version") == "2.0":
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = "GET"
        event["rawQueryString"] = ""
    else:
        event["path"], event["httpMethod"] = path, "GET"
        event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    return event


def warm(rounds: int, calls: int) -> list[tuple[str, Result, Result, str]]:
    from mangum import Mangum
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    import overcast
    from overcast.providers.aws import lambda_handler

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    asgi = Starlette(routes=[Route("/hello", hello)])
    app = overcast.App("bench")
    app.http(asgi)
    ours = lambda_handler(app)
    mangum_off = Mangum(asgi, lifespan="off")
    mangum_auto = Mangum(asgi)
    loop = ours.loop  # one loop for all, as on Lambda
    asyncio.set_event_loop(loop)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "https",
        "path": "/hello", "raw_path": b"/hello", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"example.com")], "client": ("1.2.3.4", 0), "server": ("example.com", 443),
    }  # fmt: skip

    def direct() -> None:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        loop.run_until_complete(asgi(dict(scope), receive, send))

    def timed(func: Any, event: Any = None) -> float:
        start = time.thread_time()  # CPU time: what other processes run meanwhile is not counted
        if event is None:
            for _ in range(calls):
                func()
        else:
            for _ in range(calls):
                func(event, Context())
        return (time.thread_time() - start) / calls * 1e6

    rows = []
    for label, name in (
        ("HTTP API v2", "aws-lambda-go/events/apigw-v2-request-no-authorizer.json"),
        ("REST API v1", "aws-lambda-go/events/apigw-request.json"),
    ):
        event = _event(name, "/hello")
        assert ours(copy.deepcopy(event), Context())["body"] == "hi"
        assert mangum_off(copy.deepcopy(event), Context())["body"] == "hi"
        base, raw_ours, raw_off, raw_auto = (Result(n, "us") for n in ("direct", "ours", "off", "auto"))
        for _ in range(rounds):  # interleaved: each round times all four back to back
            base.samples.append(timed(direct))
            raw_ours.samples.append(timed(ours, event))
            raw_off.samples.append(timed(mangum_off, event))
            raw_auto.samples.append(timed(mangum_auto, event))
        added_ours, added_off, added_auto = (
            Result(r.name, "us", [r.best - base.best]) for r in (raw_ours, raw_off, raw_auto)
        )
        medians = [
            statistics.median(t - d for t, d in zip(r.samples, base.samples, strict=True)) for r in (raw_ours, raw_off)
        ]
        print(
            f"{label}: direct ASGI call {base.best:.1f} us; added by lambda_handler {added_ours.median:.1f} us, "
            f"Mangum(lifespan='off') {added_off.median:.1f} us, Mangum() {added_auto.median:.1f} us "
            f"(best of {rounds} rounds); medians of the rounds: {medians[0]:.1f} / {medians[1]:.1f} us = "
            f"{medians[0] / medians[1]:.2f}x"
        )
        rows.append((f"warm added time, {label}", added_ours, added_off, "<= 0.50x Mangum(off)"))
        rows.append((f"warm added time, {label} (Mangum())", added_ours, added_auto, "(Mangum's default)"))
    return rows


# -- cold start ------------------------------------------------------------------------------

BASELINE_APP = """
import boto3
from fastapi import FastAPI, HTTPException
from mangum import Mangum
from pydantic import BaseModel, Field

api = FastAPI(title="users-demo")
dynamodb = boto3.client("dynamodb")  # a client, not boto3.resource: the leaner of the two


class User(BaseModel):
    id: str
    name: str
    email: str = Field(pattern=r"^[^@\\s]+@[^@\\s]+$")


@api.get("/users/{user_id}")
def get_user(user_id: str) -> User:
    item = dynamodb.get_item(TableName="bench-baseline-users", Key={"id": {"S": user_id}}).get("Item")
    if item is None:
        raise HTTPException(404, f"no user {user_id!r}")
    return User(**{name: value["S"] for name, value in item.items()})


handler = Mangum(api, lifespan="off")
"""

PROBE = """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, {folder!r})
import {module} as module
imported = time.perf_counter()
event = json.loads({event!r})
reply = module.handler(event, type("C", (), {{"aws_request_id": "cold"}})())
done = time.perf_counter()
assert reply["statusCode"] == 200, reply
print(json.dumps({{"ms": (done - start) * 1000, "import_ms": (imported - start) * 1000}}))
"""


def _start_moto() -> Any:
    from servers.aws import start_moto

    server = start_moto()
    server.apply_env()
    return server


def _provision(folder: Path) -> None:
    """The example's resources and one user; the baseline's table and the same user."""
    import boto3

    sys.path.insert(0, str(folder))
    os.environ["OVERCAST_TARGET"] = "aws"
    from app import users  # the example, from the copied folder

    asyncio.run(users.create())  # the first request reads only this table
    users.sync.put("u1", {"id": "u1", "name": "Ada", "email": "ada@example.com"})
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="bench-baseline-users",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(
        TableName="bench-baseline-users",
        Item={"id": {"S": "u1"}, "name": {"S": "Ada"}, "email": {"S": "ada@example.com"}},
    )


def cold(rounds: int, *, warmup: bool = True) -> list[tuple[str, Result, Result, str]]:
    server = _start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "users"
            shutil.copytree(
                ROOT / "examples" / "users", folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__")
            )
            (folder / "baseline_function.py").write_text(textwrap.dedent(BASELINE_APP))
            _provision(folder)
            event = json.dumps(_event("aws-lambda-go/events/apigw-v2-request-no-authorizer.json", "/users/u1"))
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env |= {"OVERCAST_TARGET": "aws", "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
            botocore_env = {**env, "OVERCAST_DYNAMODB_CLIENT": "botocore"}

            def probe(module: str, label: str, environ: dict[str, str]) -> float:
                code = PROBE.format(folder=str(folder), module=module, event=event)
                done = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=folder, timeout=120
                )
                if done.returncode != 0:
                    raise SystemExit(f"{module} failed:\n{done.stderr}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                imports[label].append(figures["import_ms"])
                return float(figures["ms"])

            imports: dict[str, list[float]] = {"lite": [], "botocore": [], "baseline": []}
            if warmup:  # fill the bytecode caches
                probe("lambda_function", "lite", env)
                probe("lambda_function", "botocore", botocore_env)
                probe("baseline_function", "baseline", env)
            ours, boto, base = Result("overcast", "ms"), Result("overcast+botocore", "ms"), Result("mangum+boto3", "ms")
            interleave(
                rounds,
                (ours, lambda: probe("lambda_function", "lite", env)),
                (boto, lambda: probe("lambda_function", "botocore", botocore_env)),
                (base, lambda: probe("baseline_function", "baseline", env)),
            )
            skip = 1 if warmup else 0  # the warm-up probe's figures
            split = {label: statistics.median(found[skip:]) for label, found in imports.items()}
            print(
                f"cold start (medians): lambda_function {ours.median:.0f} ms (import {split['lite']:.0f} ms, "
                f"first request {ours.median - split['lite']:.0f} ms); with client=botocore {boto.median:.0f} ms "
                f"(import {split['botocore']:.0f} ms, first request {boto.median - split['botocore']:.0f} ms); "
                f"Mangum + boto3 {base.median:.0f} ms (import {split['baseline']:.0f} ms, first request "
                f"{base.median - split['baseline']:.0f} ms)"
            )
            return [
                ("cold start: import + first DynamoDB read", ours, base, "<= 0.80x"),
                ("cold start, OVERCAST_DYNAMODB_CLIENT=botocore", boto, base, "(botocore path)"),
            ]
    finally:
        server.stop()


def main() -> None:
    args = arguments(__doc__ or "")
    rows = warm(rounds=2 if args.quick else 80, calls=100 if args.quick else 300)
    rows += cold(rounds=1 if args.quick else 7, warmup=not args.quick)
    report("Lambda runtime: lambda_handler against Mangum", rows)


if __name__ == "__main__":
    main()
