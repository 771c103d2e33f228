"""The deployment package: the users example's size and cold start against the hand-written
FastAPI + Mangum + boto3 equivalent packaged the same way, and ``overcast plan``'s wall time.

Both packages are built by Overcast's packager from a ``requirements.txt`` (``fastapi``;
the baseline adds ``mangum``), with wheels for this machine's interpreter instead of
Lambda's (so they can run here); boto3 is left out of both, as Lambda's runtime has it.
Cold start: a fresh interpreter imports the handler from the unzipped package and answers
``GET /users/u1``, one DynamoDB read on moto's server (bytecode cached for both after a
warm-up probe, as in ``aws_lambda.py``). Goal for both ratios: at most 0.5x. FastAPI and
pydantic are most of both packages and of both cold starts, so a second pair reads the
same user without a web framework (a plain ASGI app on Overcast; Mangum + boto3): Overcast's
own weight against the hand-written handler's.

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

from _common import Result, arguments, interleave, report
from aws_lambda import BASELINE_APP, PROBE, _event, _provision, _start_moto

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from overcast.deploy.package import build_package, install_requirements  # noqa: E402
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


def plain_packages(tmp: Path) -> tuple[Path, Path, dict[str, int]]:
    """The framework-free pair, packaged the same way: Overcast's runtime against Mangum's."""
    app = tmp / "plain"
    app.mkdir()
    (app / "app.py").write_text(textwrap.dedent(PLAIN_APP))
    (app / "overcast.toml").write_text(PLAIN_CONFIG)
    ours = make_plan(load_app(app), "aws").package
    (tmp / "plain-requirements.txt").write_text("mangum>=0.17\n")
    wheels = install_requirements(tmp / "plain-requirements.txt", HERE_PLATFORM, HERE_PYTHON, tmp / "plain-wheels")
    base = build_package(wheels, {"baseline_function.py": textwrap.dedent(PLAIN_BASELINE)})
    sizes = {
        "ours_zip": ours.size,
        "base_zip": base.size,
        "ours_unzipped": _unzip(ours.data, tmp / "plain-ours"),
        "base_unzipped": _unzip(base.data, tmp / "plain-base"),
    }
    return tmp / "plain-ours", tmp / "plain-base", sizes


def packages(tmp: Path) -> tuple[Path, Path, dict[str, int]]:
    """The example's package and the baseline's, unzipped; their sizes."""
    app = tmp / "users"
    shutil.copytree(ROOT / "examples" / "users", app, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    (app / "requirements.txt").write_text("fastapi>=0.110\n")
    RENDERER.wheel_platform = lambda deployment: (HERE_PLATFORM, HERE_PYTHON)  # type: ignore[method-assign]
    ours = make_plan(load_app(app), "aws").package
    (tmp / "baseline-requirements.txt").write_text("fastapi>=0.110\nmangum>=0.17\n")
    wheels = install_requirements(tmp / "baseline-requirements.txt", HERE_PLATFORM, HERE_PYTHON, tmp / "wheels")
    base = build_package(wheels, {"baseline_function.py": textwrap.dedent(BASELINE_APP)})
    sizes = {
        "ours_zip": ours.size,
        "base_zip": base.size,
        "ours_unzipped": _unzip(ours.data, tmp / "ours"),
        "base_unzipped": _unzip(base.data, tmp / "base"),
    }
    return tmp / "ours", tmp / "base", sizes


def probe(folder: Path, module: str, env: dict[str, str]) -> float:
    event = json.dumps(_event("aws-lambda-go/events/apigw-v2-request-no-authorizer.json", "/users/u1"))
    code = PROBE.format(folder=str(folder), module=module, event=event)
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{module} failed:\n{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["ms"])


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


def cold_starts(pairs: list[tuple[Path, Path]], tmp: Path, rounds: int) -> list[tuple[Result, Result]]:
    """Each pair's cold start (ours, the baseline's), probes interleaved, bytecode cached."""
    site = os.pathsep.join([sysconfig.get_paths()["purelib"]])  # boto3, as Lambda's runtime has it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env |= {"OVERCAST_TARGET": "aws", "PYTHONPYCACHEPREFIX": str(tmp / "pycache"), "PYTHONPATH": site}
    found = []
    runs = []
    for ours_dir, base_dir in pairs:
        probe(ours_dir, "overcast_handler", env)  # fill the bytecode caches
        probe(base_dir, "baseline_function", env)
        ours, base = Result("overcast", "ms"), Result("mangum+boto3", "ms")
        runs += [
            (ours, lambda d=ours_dir: probe(d, "overcast_handler", env)),
            (base, lambda d=base_dir: probe(d, "baseline_function", env)),
        ]
        found.append((ours, base))
    interleave(rounds, *runs)
    return found


def _sizes(sizes: dict[str, int], what: str) -> tuple[Result, Result]:
    return Result("overcast", "MB", [sizes[f"ours_{what}"] / 1e6]), Result(
        "baseline", "MB", [sizes[f"base_{what}"] / 1e6]
    )


def main() -> None:
    args = arguments(__doc__ or "")
    server = _start_moto()
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            ours_dir, base_dir, sizes = packages(tmp)
            plain_ours, plain_base, plain_sizes = plain_packages(tmp)
            _provision(ours_dir)
            (example, example_base), (plain, plain_baseline) = cold_starts(
                [(ours_dir, base_dir), (plain_ours, plain_base)], tmp, 1 if args.quick else 7
            )
    finally:
        server.stop()
    timed = plan_time(1 if args.quick else 5)
    print(f"overcast plan examples/users --target aws: median {timed.median:.0f} ms over {len(timed.samples)} runs")
    report(
        "Deployment package: the users example against FastAPI + Mangum + boto3",
        [
            ("package.zip size", *_sizes(sizes, "zip"), "<= 0.50x"),
            ("unzipped size", *_sizes(sizes, "unzipped"), "<= 0.50x"),
            ("cold start: import + first read", example, example_base, "<= 0.50x"),
        ],
    )
    report(
        "Without a web framework: a plain ASGI read on Overcast against Mangum + boto3",
        [
            ("package.zip size", *_sizes(plain_sizes, "zip"), "(reported)"),
            ("unzipped size", *_sizes(plain_sizes, "unzipped"), "(reported)"),
            ("cold start: import + first read", plain, plain_baseline, "<= 0.50x"),
        ],
    )


if __name__ == "__main__":
    main()
