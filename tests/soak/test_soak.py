"""A soak under load: ``overcast run examples/users --with-workers``, a real uvicorn process,
on SQLite, on Redis and on PostgreSQL (real servers), at concurrency 64 with a mix of
reads, conditional writes (``if_absent``: new users, and duplicates refused with 409)
and publishes (each signup's subscriber writes a file).

Checked: no 5xx and no unexpected status; every acknowledged write readable afterwards
in the store itself; every published message delivered (one welcome file per user);
resident memory, descriptors and threads bounded after warm-up; connections to the
provider within its pool. p99 latency is reported against the first part of the run's.
Short in CI (10 s per backend); ``pytest --long`` (or ``OVERCAST_LONG=1``) runs 10
minutes, ``OVERCAST_SOAK_SECONDS`` any length. See docs/robustness.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from soak_support import Load, Sample, long_run, p99, run_load, sample, soak_seconds

import overcast

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "users"
CONCURRENCY = 64
POOL_SIZE = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _urls(backend: str, folder: Path, request: pytest.FixtureRequest) -> tuple[dict[str, str], int | None]:
    """The resources' URLs on target ``soak`` for ``backend``, and the provider's port (None: embedded)."""
    run = uuid.uuid4().hex[:8]
    bucket = f"file:///{folder / 'welcome-files'}"  # four slashes: an absolute path
    if backend == "sqlite":
        return {
            "kv.users": f"sqlite:///{folder / 'users.db'}?table=users",
            "cache.users-cache": "memory://users-cache",
            "topic.signups": f"sqlite:///{folder / 'signups.db'}",
            "bucket.welcome": bucket,
            "defaults.queue": f"sqlite:///{folder}/{{name}}.db",  # the welcome's backlog (critical=False)
        }, None
    if backend == "redis":
        base = request.getfixturevalue("redis_server").env["OVERCAST_TEST_REDIS_URL"]
        return {
            "kv.users": f"{base}?prefix=soak-users-{run}&max_connections={POOL_SIZE}",
            "cache.users-cache": f"{base}?prefix=soak-cache-{run}&max_connections={POOL_SIZE}",
            "topic.signups": f"{base}?prefix=soak-signups-{run}&max_connections={POOL_SIZE}",
            "bucket.welcome": bucket,
            "defaults.queue": f"{base}?prefix=soak-{{name}}-{run}&max_connections={POOL_SIZE}",
        }, urlsplit(base).port
    base = request.getfixturevalue("postgres_server").env["OVERCAST_TEST_POSTGRES_URL"]
    return {
        "kv.users": f"{base}?store=soak_users_{run}&pool_size={POOL_SIZE}",
        "cache.users-cache": "memory://users-cache",
        "topic.signups": f"{base}?topic=soak_signups_{run}&pool_size={POOL_SIZE}",
        "bucket.welcome": bucket,
        "defaults.queue": f"{base}?queue={{name}}_{run}&pool_size={POOL_SIZE}",
    }, urlsplit(base).port


@pytest.fixture
def served(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, int, dict[str, str], int | None, Path]]:
    """examples/users copied, served by ``overcast run --with-workers`` on target soak:
    (base URL, server pid, resource URLs, provider port, log)."""
    folder = tmp_path / "users"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    urls, provider_port = _urls(backend, tmp_path, request)
    toml = (folder / "overcast.toml").read_text() + "\n[targets.soak]\n"
    toml += "".join(f'{key} = "{value}"\n' for key, value in urls.items())
    (folder / "overcast.toml").write_text(toml)
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OVERCAST_TARGET": "soak"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "overcast",
                "run",
                str(folder),
                "--with-workers",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"overcast run exited: {log.read_text()}")
            try:
                httpx.get(f"{base}/users/nobody", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"overcast run did not answer: {log.read_text()}"
                time.sleep(0.1)
        yield base, proc.pid, urls, provider_port, log
        assert proc.poll() is None, f"overcast run died: {log.read_text()[-3000:]}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have died: the assertion above says why
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def _soak(base: str, pid: int, provider_port: int | None, seconds: float) -> tuple[Load, list[Sample]]:
    """The load, with the server sampled every second meanwhile."""
    load = Load()
    samples: list[Sample] = []
    started = time.monotonic()
    running = asyncio.create_task(run_load(base, seconds, CONCURRENCY, load))
    while not running.done():
        samples.append(sample(pid, provider_port, started))
        await asyncio.wait({running}, timeout=1.0)
    await running
    samples.append(sample(pid, provider_port, started))
    return load, samples


def _every_write_readable(urls: dict[str, str], load: Load) -> list[str]:
    users = overcast.open_kv(urls["kv.users"])
    found = users.sync.get_many(list(load.created))
    return [uid for uid, user in load.created.items() if uid not in found or found[uid].value != user]


def _undelivered(urls: dict[str, str], load: Load, log: Path, timeout: float) -> list[str]:
    """The users whose welcome file has not appeared within ``timeout`` (the subscriber's work)."""
    bucket = overcast.open_bucket(urls["bucket.welcome"])
    missing = set(load.created)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        written = {info.key.removeprefix("welcome/").removesuffix(".txt") for info in bucket.sync.list("welcome/")}
        missing -= written
        if missing:
            time.sleep(0.5)
    return sorted(missing)


def _report(backend: str, seconds: float, load: Load, samples: list[Sample], undelivered: list[str]) -> dict[str, Any]:
    warm = next((s for s in samples if s.at >= seconds / 3), samples[0])
    last = samples[-1]
    first_part = min(60.0, seconds / 3)
    early = [lat for at, lat in load.latencies if at < first_part]
    late = [lat for at, lat in load.latencies if at >= seconds - first_part]
    return {
        "backend": backend,
        "seconds": seconds,
        "concurrency": CONCURRENCY,
        "requests": load.requests,
        "statuses": dict(sorted(load.statuses.items())),
        "errors_5xx": len(load.errors),
        "acknowledged_writes": len(load.created),
        "undelivered": len(undelivered),
        "rss_kib_warm": warm.rss_kib,
        "rss_kib_end": last.rss_kib,
        "rss_growth": round(last.rss_kib / warm.rss_kib - 1, 4),
        "fds_warm_end_max": [warm.fds, last.fds, max(s.fds for s in samples)],
        "threads_warm_end_max": [warm.threads, last.threads, max(s.threads for s in samples)],
        "connections_max": max(s.connections for s in samples),
        "p99_ms_first": round(p99(early) * 1000, 1),
        "p99_ms_last": round(p99(late) * 1000, 1),
    }


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_soak_under_load(served: Any, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    base, pid, urls, provider_port, log = served
    seconds = soak_seconds()
    load, samples = asyncio.run(_soak(base, pid, provider_port, seconds))
    unreadable = _every_write_readable(urls, load)
    undelivered = _undelivered(urls, load, log, timeout=max(60.0, seconds / 5))
    report = _report(backend, seconds, load, samples, undelivered)
    with capsys.disabled():
        print(f"\nsoak {json.dumps(report)}")
    target = os.environ.get("OVERCAST_SOAK_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps(report) + "\n")
    assert load.requests > CONCURRENCY and len(load.created) > 0
    assert load.errors == [], load.errors[:5]
    assert load.unexpected == [], load.unexpected[:5]
    assert unreadable == [], f"{len(unreadable)} acknowledged writes not readable: {unreadable[:5]}"
    assert undelivered == [], (
        f"{len(undelivered)} signups never delivered: {undelivered[:5]}; {log.read_text()[-2000:]}"
    )
    # bounded: flat memory after warm-up on the long run (a short one still settles its caches)
    assert report["rss_growth"] <= (0.10 if long_run() else 0.50), report
    fds_warm, fds_end, _ = report["fds_warm_end_max"]
    assert fds_end <= fds_warm + 16, report
    threads_warm, threads_end, _ = report["threads_warm_end_max"]
    assert threads_end <= threads_warm + 8, report
    if backend in ("postgres", "redis"):  # a blocking pool and the loop's, each at most POOL_SIZE
        assert report["connections_max"] <= 2 * POOL_SIZE, report
