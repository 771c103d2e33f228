"""One provider call against a port, timed, in a fresh process: what ``test_deadlines.py``
asserts and ``benchmarks/deadlines.py`` reports.

A fresh process per call, because the Google clients read their emulator host once, when the
first client is built, and every family shares its clients per process; a call measured in
its own process starts from nothing, as a cold serverless function does. The SDK is imported
before the clock starts, so the figure is the call's, not the import's.

    python tests/providers/deadline_probe.py CASE PORT [EXTRA_QUERY]   # prints one JSON line
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]

#: The Azurite account (tests/servers/azure.py), every endpoint at one port.
_AZURE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
)
_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class Case:
    """A provider call: ``opener`` ("kv", "cache", ...) on ``url`` (``{port}`` filled in), then
    ``call`` on the handle, with ``env`` set; ``server`` is the real server behind the proxy."""

    family: str
    name: str
    server: str
    opener: str
    url: str
    call: str
    preload: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


def _aws(name: str, opener: str, url: str, call: str, *extra: str) -> Case:
    return Case("aws", name, "moto_server", opener, url, call, ("botocore.session", *extra), tuple(_AWS_ENV.items()))


def _azure(name: str, opener: str, url: str, call: str, module: str) -> Case:
    return Case("azure", name, "azurite", opener, url, call, (module,), (("OVERCAST_DEADLINE_AZURE", _AZURE),))


def _redis(name: str, opener: str, call: str) -> Case:
    return Case("redis", name, "redis_server", opener, "redis://127.0.0.1:{port}/0?prefix=dl", call, ("redis",))


def _postgres(name: str, opener: str, call: str) -> Case:
    url = "postgresql://127.0.0.1:{port}/postgres"
    return Case("postgres", name, "postgres_server", opener, url, call, ("psycopg",))


_GCP = {
    "FIRESTORE": ("firestore_emulator", "google.cloud.firestore"),
    "STORAGE": ("gcs_emulator", "google.cloud.storage"),
    "PUBSUB": ("pubsub_emulator", "google.cloud.pubsub_v1"),
}


def _gcp(name: str, opener: str, url: str, call: str, emulator: str) -> Case:
    """A Google case; ``emulator`` is ``VARIABLE=value`` pointing the client at the port."""
    variable, _, value = emulator.partition("=")
    server, module = _GCP[variable.split("_")[0]]
    env = ((variable, value), ("GOOGLE_CLOUD_PROJECT", "overcast-test"))
    return Case("gcp", name, server, opener, url, call, (module,), env)


_AZ = "?connection_env=OVERCAST_DEADLINE_AZURE"
_EP = "endpoint=http://127.0.0.1:{port}"
CASES: tuple[Case, ...] = (
    _redis("redis cache", "cache", "get"),
    _redis("redis kv", "kv", "get"),
    _redis("redis queue", "queue", "send"),
    _postgres("postgres kv", "kv", "get"),
    _postgres("postgres kv (sync)", "kv", "sync get"),
    _postgres("postgres queue", "queue", "send"),
    _aws("dynamodb (lite)", "kv", "dynamodb://dl-table?client=lite&" + _EP, "get"),
    _aws("dynamodb (botocore)", "kv", "dynamodb://dl-table?client=botocore&" + _EP, "get"),
    _aws("s3", "bucket", "s3://dl-bucket?" + _EP, "head"),
    _aws("sqs", "queue", "sqs://dl-queue?" + _EP, "send"),
    _aws("sns", "topic", "sns://dl-topic?" + _EP, "publish"),
    _aws("secrets manager", "secrets", "secretsmanager://dl-secret?" + _EP, "get"),
    _azure("azure tables", "kv", "azuretables://dltable" + _AZ, "get", "azure.data.tables"),
    _azure("azure blob", "bucket", "azblob://dlcontainer" + _AZ, "head", "azure.storage.blob"),
    _azure("azure blob (sync)", "bucket", "azblob://dlcontainer" + _AZ, "sync head", "azure.storage.blob"),
    _azure("azure queues", "queue", "azqueue://dlqueue" + _AZ, "send", "azure.storage.queue"),
    _gcp("firestore", "kv", "firestore://dl-docs", "get", "FIRESTORE_EMULATOR_HOST=127.0.0.1:{port}"),
    _gcp("firestore (sync)", "kv", "firestore://dl-docs", "sync get", "FIRESTORE_EMULATOR_HOST=127.0.0.1:{port}"),
    _gcp("gcs", "bucket", "gs://dl-bucket", "head", "STORAGE_EMULATOR_HOST=http://127.0.0.1:{port}"),
    _gcp("pubsub", "topic", "pubsub://dl-topic", "publish", "PUBSUB_EMULATOR_HOST=127.0.0.1:{port}"),
    # no emulator exists for these: the fakes of the secrets tests stand behind the proxy
    Case(
        "azure",
        "key vault (fake server)",
        "fake_keyvault",
        "secrets",
        "keyvault://dl?endpoint=https://127.0.0.1:{port}&verify_challenge=false",
        "get",
        ("azure.keyvault.secrets",),
    ),
    Case(
        "gcp",
        "secret manager (fake server)",
        "fake_secret_manager",
        "secrets",
        "gsm://dl?project=overcast-test&emulator=127.0.0.1:{port}",
        "get",
        ("google.cloud.secretmanager",),
    ),
    Case(
        "momento",
        "momento (fake server)",
        "fake_momento",
        "cache",
        "momento://dl-cache?local=127.0.0.1:{port}",
        "get",
        ("momento",),
    ),
)


_DEFAULTS = {
    "redis": "overcast.providers.redis._client",
    "postgres": "overcast.providers.postgres._db",
    "aws": "overcast.providers.aws._client",
    "azure": "overcast.providers.azure._credentials",
    "gcp": "overcast.providers.gcp._retries",
    "momento": "overcast.providers.momento.cache",
}


def default_timeout(case: Case) -> float:
    """The default deadline of ``case``'s family, in seconds (its ``DEFAULT_TIMEOUT``)."""
    return float(importlib.import_module(_DEFAULTS[case.family]).DEFAULT_TIMEOUT)


def _call(handle: Any, call: str) -> Any:
    if call.startswith("sync "):  # the blocking face, in a worker thread as a WSGI app calls it
        return asyncio.to_thread(getattr(handle.sync, call.removeprefix("sync ")), "k")
    if call in ("get", "head"):
        return getattr(handle, call)("k")
    if call == "send":
        return handle.send({"v": 1})
    if call == "publish":
        return handle.publish({"v": 1})
    raise AssertionError(call)


async def _once(handle: Any, call: str) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        await _call(handle, call)
    except Exception as exc:  # reported, not raised: the parent asserts on it
        return time.perf_counter() - start, exc
    return time.perf_counter() - start, None


async def _timed(case: Case, url: str) -> dict[str, Any]:
    """The first call (a cold start: the client is built, the provider module imported) and
    the same call again on the same handle (the deadline's cost alone)."""
    import overcast

    opener = getattr(overcast, f"open_{case.opener}")
    for module in case.preload:
        importlib.import_module(module)
    start = time.perf_counter()
    try:
        handle = opener(url, name="dl")
    except Exception as exc:
        return {"elapsed": time.perf_counter() - start, "again": None, **_described(exc)}
    opened = time.perf_counter() - start
    first, error = await _once(handle, case.call)
    again, _ = await _once(handle, case.call)
    return {"elapsed": opened + first, "again": again, **_described(error)}


def _described(error: BaseException | None) -> dict[str, Any]:
    return {
        "error": None if error is None else type(error).__name__,
        "module": None if error is None else type(error).__module__,
        "message": None if error is None else str(error)[:300],
    }


def probe(case: Case, port: int, extra: str = "", *, limit: float = 120.0) -> dict[str, Any]:
    """Run ``case`` against ``port`` in a fresh process (``extra`` appended to the URL's query);
    a call still running after ``limit`` seconds is reported as ``hung``."""
    env = {**os.environ, **{k: v.format(port=port) for k, v in case.env}}
    # OVERCAST_DEADLINE_SRC: another checkout's src, to measure it (benchmarks/deadlines.py --src)
    src = os.environ.get("OVERCAST_DEADLINE_SRC") or str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    command = [sys.executable, str(HERE), case.name, str(port), extra]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        hung = {"error": "hung", "module": None, "message": f"still running after {limit} s"}
        return {"elapsed": limit, "again": None, **hung}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"probe of {case.name} failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(lines[-1]))


def main(argv: list[str]) -> None:
    name, port, extra = argv[0], int(argv[1]), argv[2] if len(argv) > 2 else ""
    case = next(c for c in CASES if c.name == name)
    url = case.url.format(port=port)
    if extra:
        url += ("&" if "?" in url else "?") + extra
    print(json.dumps(asyncio.run(_timed(case, url))))


if __name__ == "__main__":
    main(sys.argv[1:])
