"""The deployment package: the users example's size and cold start against the hand-written
FastAPI + Mangum + boto3 equivalent packaged the same way, and ``overcast plan``'s wall time.

Both packages are built by Overcast's packager from a ``requirements.txt`` (``fastapi``;
the baseline adds ``mangum``), with wheels for this machine's interpreter instead of
Lambda's (so they can run here). Overcast's AWS providers do not use boto3 (they sign
their own requests, ``providers/aws/_lite.py``); the baseline does, so it is measured twice:

- SDK bundled (the headline): the baseline's ``requirements.txt`` pins ``boto3`` and
  ``botocore`` (the versions installed here) and its handler imports them from its own
  package. AWS recommends this: "To have full control of the dependencies your function
  uses, we recommend packaging all your dependencies with your deployment package"
  (Best practices for working with AWS Lambda functions, "Control the dependencies in
  your function's deployment package",
  https://docs.aws.amazon.com/lambda/latest/dg/best-practices.html), since Lambda
  updates the runtime's SDK under the function and a package holding only some of the
  SDK's dependencies can break on that update (Working with .zip file archives for Python
  Lambda functions, "Runtime dependencies in Python",
  https://docs.aws.amazon.com/lambda/latest/dg/python-package.html).
- SDK from the runtime: boto3 left out of the baseline's package and read, as Lambda's
  runtime provides it, from a folder holding only boto3 and its dependencies.

Cold start: a fresh interpreter (``python -S``: no site-packages, only the package and,
for the second variant, the runtime's SDK) imports the handler from the unzipped package
and answers ``GET /users/u1``, one DynamoDB read on moto's server; twice: with bytecode
cached after a warm-up probe (as in ``aws_lambda.py``), and compiled at every start, as
on Lambda, whose ``/var/task`` is read-only and whose packages carry no ``__pycache__``.
FastAPI and pydantic are most of both packages, so a second pair reads the same user
without a web framework (a plain ASGI app on Overcast; Mangum + boto3): Overcast's own
weight against the hand-written handler's. Goal for the example's ratios: at most 0.5x.
A third probe gives the floor: the baseline's FastAPI route behind Mangum answering from a
constant instead of DynamoDB (no SDK, no read), packaged the same way: what FastAPI,
pydantic and an adapter cost by themselves, which no handler of this app can go under.

    .venv/bin/python benchmarks/deploy_package.py [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore
from _common import Result, arguments, interleave, report
from aws_lambda import BASELINE_APP, _event, _provision, _start_moto

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from overcast.deploy.package import Package, build_package, install_requirements  # noqa: E402
from overcast.deploy.plan import make_plan  # noqa: E402
from overcast.loader import load_app  # noqa: E402
from overcast.providers.aws.terraform import RENDERER  # noqa: E402

HERE_PLATFORM = (f"manylinux2014_{os.uname().machine}", f"manylinux_2_28_{os.uname().machine}")
HERE_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def _unzip(data: bytes, into: Path) -> int:
    """Extract ``data`` into ``into``; the unzipped size in bytes."""
    archive_path = into.with_suffix(".zip")
    archive_path.write_bytes(data)
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(into)
        return sum(info.file_size for info in archive.infolist())


#: the same read without a web framework: Overcast's own weight against Mangum + boto3's
PLAIN_APP = """
import json

import overcast

app = overcast.App("users-demo")
users = app.kv("users")


async def api(scope, receive, send):
    item = await users.get(scope["path"].rsplit("/", 1)[-1])
    status, body = (404, b"{}") if item is None else (200, json.dumps(item.value).encode())
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


app.http(api)
"""
PLAIN_CONFIG = """
[app]
entry = "app:app"

[targets.aws]
kv.users = "dynamodb://users-demo-users"
"""
PLAIN_BASELINE = """
import json

import boto3
from mangum import Mangum

dynamodb = boto3.client("dynamodb")


async def api(scope, receive, send):
    key = {"id": {"S": scope["path"].rsplit("/", 1)[-1]}}
    item = dynamodb.get_item(TableName="bench-baseline-users", Key=key).get("Item")
    status = 404 if item is None else 200
    body = b"{}" if item is None else json.dumps({k: v["S"] for k, v in item.items()}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


handler = Mangum(api, lifespan="off")
"""


#: the floor: the baseline's route and model behind Mangum, answering without any SDK or read
FLOOR_APP = """
from fastapi import FastAPI
from mangum import Mangum
from pydantic import BaseModel, Field

api = FastAPI(title="users-demo")


class User(BaseModel):
    id: str
    name: str
    email: str = Field(pattern=r"^[^@\\s]+@[^@\\s]+$")


@api.get("/users/{user_id}")
def get_user(user_id: str) -> User:
    return User(id=user_id, name="Ada", email="ada@example.com")


handler = Mangum(api, lifespan="off")
"""


#: the SDK, pinned to what is installed here: the baseline's when bundled (AWS's recommendation)
SDK = (f"boto3=={boto3.__version__}", f"botocore=={botocore.__version__}")
#: what Lambda's Python runtime provides besides the standard library: the SDK and its dependencies
LAMBDA_RUNTIME = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six.py")


def _baselines(tmp: Path, name: str, requirements: list[str], handler: str, floor: str = "") -> dict[str, Package]:
    """The hand-written handler packaged by Overcast's packager: with the SDK, and without;
    and ``floor``, if given, packaged with the same requirements and no SDK."""
    built = {}
    for variant, lines in (("bundled", [*requirements, *SDK]), ("runtime", requirements)):
        (tmp / f"{name}-{variant}.txt").write_text("\n".join(lines) + "\n")
        wheels = install_requirements(
            tmp / f"{name}-{variant}.txt", HERE_PLATFORM, HERE_PYTHON, tmp / f"{name}-{variant}-wheels"
        )
        built[variant] = build_package(wheels, {"baseline_function.py": textwrap.dedent(handler)})
        if floor and variant == "runtime":
            built["floor"] = build_package(wheels, {"baseline_function.py": textwrap.dedent(floor)})
    return built


def packages(tmp: Path) -> dict[str, tuple[Path, int, int]]:
    """Every package, unzipped: name -> (folder, zip bytes, unzipped bytes)."""
    example = tmp / "users"
    shutil.copytree(ROOT / "examples" / "users", example, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    (example / "requirements.txt").write_text("fastapi>=0.110\n")
    plain = tmp / "plain"
    plain.mkdir()
    (plain / "app.py").write_text(textwrap.dedent(PLAIN_APP))
    (plain / "overcast.toml").write_text(PLAIN_CONFIG)
    RENDERER.wheel_platform = lambda deployment: (HERE_PLATFORM, HERE_PYTHON)  # type: ignore[method-assign]
    built = {"example": make_plan(load_app(example), "aws").package, "plain": make_plan(load_app(plain), "aws").package}
    requirements = ["fastapi>=0.110", "mangum>=0.17"]
    for variant, package in _baselines(tmp, "example", requirements, BASELINE_APP, FLOOR_APP).items():
        built[f"example-{variant}"] = package
    for variant, package in _baselines(tmp, "plain", ["mangum>=0.17"], PLAIN_BASELINE).items():
        built[f"plain-{variant}"] = package
    (tmp / "unzipped").mkdir()
    return {
        name: (tmp / "unzipped" / name, package.size, _unzip(package.data, tmp / "unzipped" / name))
        for name, package in built.items()
    }


def _lambda_runtime(folder: Path) -> Path:
    """A folder holding only what Lambda's runtime provides, linked from this environment."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in LAMBDA_RUNTIME:
        (folder / name).symlink_to(site / name)
    return folder


PROBE = """
import json, sys, time
start = time.perf_counter()
sys.path.insert(0, {folder!r})
import {module} as module
event = json.loads({event!r})
reply = module.handler(event, type("C", (), {{"aws_request_id": "cold"}})())
done = time.perf_counter()
assert reply["statusCode"] == 200, reply
sdk = sys.modules.get("botocore")
cpu = time.process_time()  # the whole process's, interpreter start-up included
print(json.dumps({{"ms": (done - start) * 1000, "cpu_ms": cpu * 1000, "sdk": sdk.__file__ if sdk else None}}))
"""


def probe(folder: Path, module: str, env: dict[str, str], sdk_from: Path | None) -> tuple[float, float]:
    """One cold start (``python -S``: nothing but the package and ``PYTHONPATH``): its wall
    and CPU milliseconds; checks where botocore came from: nowhere (Overcast), or ``sdk_from``."""
    event = json.dumps(_event("aws-lambda-go/events/apigw-v2-request-no-authorizer.json", "/users/u1"))
    code = PROBE.format(folder=str(folder), module=module, event=event)
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=folder, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"{module} failed:\n{done.stderr}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    sdk = found["sdk"]
    if (sdk is None) != (sdk_from is None) or (sdk is not None and not sdk.startswith(str(sdk_from))):
        raise SystemExit(f"{folder.name}: botocore from {sdk}, expected from {sdk_from}")
    return float(found["ms"]), float(found["cpu_ms"])


def plan_time(rounds: int) -> Result:
    """``overcast plan examples/users --target aws`` in a fresh process, wall time."""
    result = Result("overcast plan", "ms")
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "users"
        shutil.copytree(ROOT / "examples" / "users", app, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        for _ in range(rounds):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "overcast", "plan", str(app), "-t", "aws"], env=env, check=True)
            result.samples.append((time.perf_counter() - started) * 1000)
    return result


def cold_starts(folders: dict[str, Path], tmp: Path, rounds: int) -> dict[tuple[str, str, str], Result]:
    """(package, bytecode, wall or cpu) -> cold start; every probe interleaved with the others.
    ``cached``: bytecode cached after a warm-up probe; ``compiled``: compiled at every start.
    CPU time is the steadier figure on a machine others load: wall time waits for the cores."""
    runtime = _lambda_runtime(tmp / "lambda-runtime")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OVERCAST_"))}
    base["OVERCAST_TARGET"] = "aws"
    modes = {
        "cached": base | {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")},
        "compiled": base | {"PYTHONDONTWRITEBYTECODE": "1"},
    }
    found: dict[tuple[str, str, str], Result] = {}
    runs = []
    for name, folder in folders.items():
        module = "overcast_handler" if "-" not in name else "baseline_function"
        sdk_from = folder if name.endswith("-bundled") else runtime if name.endswith("-runtime") else None
        for mode, env in modes.items():
            env = env | {"PYTHONPATH": str(runtime)} if name.endswith("-runtime") else env
            if mode == "cached":
                probe(folder, module, env, sdk_from)  # fill the bytecode cache
            wall = found[(name, mode, "wall")] = Result(name, "ms")
            cpu = found[(name, mode, "cpu")] = Result(name, "ms")

            def run(
                f: Path = folder, m: str = module, e: dict[str, str] = env, s: Path | None = sdk_from, cpu: Result = cpu
            ) -> float:
                elapsed, used = probe(f, m, e, s)
                cpu.samples.append(used)
                return elapsed

            runs.append((wall, run))
    interleave(rounds, *runs)
    return found


def _size(found: dict[str, tuple[Path, int, int]], name: str, index: int) -> Result:
    return Result(name, "kB", [found[name][index] / 1000])


def _rows(found: dict[str, tuple[Path, int, int]], cold: dict[tuple[str, str, str], Result], variant: str) -> list[Any]:
    rows = []
    for pair, label in (("example", "example"), ("plain", "bare ASGI")):
        base = f"{pair}-{variant}"
        goal = "<= 0.50x" if pair == "example" else "(reported)"
        rows += [
            (f"{label}: package.zip", _size(found, pair, 1), _size(found, base, 1), goal),
            (f"{label}: unzipped", _size(found, pair, 2), _size(found, base, 2), goal),
        ]
        for mode in ("cached", "compiled"):
            for clock in ("cpu", "wall"):
                what = f"{label}: cold {mode}, {clock}"
                rows.append((what, cold[(pair, mode, clock)], cold[(base, mode, clock)], goal))
    for mode in ("cached", "compiled"):
        floor = cold[("example-floor", mode, "cpu")]
        against = cold[(f"example-{variant}", mode, "cpu")]
        rows.append((f"floor: cold {mode}, cpu", floor, against, "(no handler lower)"))
        rows.append((f"example over floor: {mode}, cpu", cold[("example", mode, "cpu")], floor, "(reported)"))
    return rows


def main() -> None:
    args = arguments(__doc__ or "")
    server = _start_moto()
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            found = packages(tmp)
            _provision(found["example"][0])
            cold = cold_starts({k: v[0] for k, v in found.items()}, tmp, 1 if args.quick else 5)
    finally:
        server.stop()
    timed = plan_time(1 if args.quick else 5)
    print(f"overcast plan examples/users --target aws: median {timed.median:.0f} ms over {len(timed.samples)} runs")
    print(f"load average: {os.getloadavg()[0]:.1f}; baseline SDK: {', '.join(SDK)}")
    report(
        "SDK bundled in the baseline's package (AWS's recommendation): Overcast against Mangum + boto3",
        _rows(found, cold, "bundled"),
    )
    report("SDK from Lambda's runtime, left out of the baseline's package", _rows(found, cold, "runtime"))


if __name__ == "__main__":
    main()
