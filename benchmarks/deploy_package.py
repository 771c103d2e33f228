"""The deployment package: the users example's size and cold start against the hand-written
FastAPI + Mangum + boto3 equivalent packaged the same way, and ``overcast plan``'s wall time.

Both packages are built by Overcast's packager from a ``requirements.txt`` (``fastapi``;
the baseline adds ``mangum``), with wheels for this machine's interpreter instead of
Lambda's (so they can run here); boto3 is left out of both, as Lambda's runtime has it.
Cold start: a fresh interpreter imports the handler from the unzipped package and answers
``GET /users/u1``, one DynamoDB read on moto's server (bytecode cached for both after a
warm-up probe, as in ``aws_lambda.py``). Goal for both ratios: at most 0.5x.

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


def main() -> None:
    args = arguments(__doc__ or "")
    server = _start_moto()
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            ours_dir, base_dir, sizes = packages(tmp)
            _provision(ours_dir)
            site = os.pathsep.join([sysconfig.get_paths()["purelib"]])  # boto3, as Lambda's runtime has it
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
            env |= {"OVERCAST_TARGET": "aws", "PYTHONPYCACHEPREFIX": str(tmp / "pycache"), "PYTHONPATH": site}
            probe(ours_dir, "overcast_handler", env)  # fill the bytecode caches
            probe(base_dir, "baseline_function", env)
            ours, base = Result("overcast", "ms"), Result("mangum+boto3", "ms")
            interleave(
                1 if args.quick else 7,
                (ours, lambda: probe(ours_dir, "overcast_handler", env)),
                (base, lambda: probe(base_dir, "baseline_function", env)),
            )
    finally:
        server.stop()
    zipped = (Result("overcast", "MB", [sizes["ours_zip"] / 1e6]), Result("baseline", "MB", [sizes["base_zip"] / 1e6]))
    unzipped = (
        Result("overcast", "MB", [sizes["ours_unzipped"] / 1e6]),
        Result("baseline", "MB", [sizes["base_unzipped"] / 1e6]),
    )
    timed = plan_time(1 if args.quick else 5)
    print(f"overcast plan examples/users --target aws: median {timed.median:.0f} ms over {len(timed.samples)} runs")
    report(
        "Deployment package: the users example against FastAPI + Mangum + boto3",
        [
            ("package.zip size", *zipped, "<= 0.50x"),
            ("unzipped size", *unzipped, "<= 0.50x"),
            ("cold start: import + first read", ours, base, "<= 0.50x"),
        ],
    )


if __name__ == "__main__":
    main()
