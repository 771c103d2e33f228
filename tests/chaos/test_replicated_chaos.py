"""Replicated KV stores under faults on real servers: proxy faults (refuse, blackhole, cut) and
kill -9 of a server whose data survives it, while writers run; then every store is checked
against the acknowledged writes. Short in CI; OVERCAST_CHAOS_SECONDS=300 for a long run."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import overcast
from chaos.harness import Fault, run
from chaos.proxy import BLACKHOLE, PASS, REFUSE, FaultProxy
from resilience.pairs import replicated_url
from servers import Server, free_port, port_open, spawn
from servers.redis import _program as redis_program

SECONDS = float(os.environ.get("OVERCAST_CHAOS_SECONDS", "12"))
#: the run, convergence and the checks; the suite's own per-test limit is for short tests
pytestmark = pytest.mark.timeout(SECONDS * 2 + 240)


class PersistentRedis:
    """redis-server with every write fsynced to its append-only file, so kill -9 keeps acked data."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.server: Server = self._start()

    def _start(self) -> Server:
        command = [redis_program(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                   "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)]  # fmt: skip
        return spawn("redis-aof", command, self.port)

    async def kill_and_restart(self, down: float) -> None:
        assert self.server.process is not None
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()
        await asyncio.sleep(down)
        self.server = await asyncio.to_thread(self._start)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def redis_aof(tmp_path: Path) -> Iterator[PersistentRedis]:
    server = PersistentRedis(tmp_path)
    yield server
    server.stop()


def _converged(label: str, report: Any, *, minimum: int) -> None:
    """Print the run's figures; every acknowledged write is in every store, nothing else is, all agree."""
    print(f"\n{label}: {report}")
    assert report.acknowledged > minimum and len(report.faults) >= 3, report
    assert not report.lost, report.lost[:5]
    assert not report.foreign, report.foreign[:5]
    assert not report.disagree, report.disagree[:5]


def _proxy_faults(proxy: FaultProxy, label: str) -> list[Fault]:
    async def hold(mode: str) -> str:
        proxy.set(mode)
        await asyncio.sleep(1.5)
        proxy.set(PASS)
        return f"{label} {mode} 1.5 s"

    async def cut() -> str:
        proxy.cut()
        return f"{label} connections reset"

    return [lambda: hold(REFUSE), lambda: hold(BLACKHOLE), cut]


@pytest.mark.parametrize("ack", ["primary", "all"])
def test_redis_primary_sqlite_replica_loses_no_acknowledged_write(
    ack: str, redis_aof: PersistentRedis, tmp_path: Path
) -> None:
    proxy = FaultProxy(redis_aof.port)
    prefix = f"chaos-{ack}"
    direct = [f"redis://127.0.0.1:{redis_aof.port}/0?prefix={prefix}", f"sqlite:///{tmp_path}/replica.db"]
    through = [f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}", direct[1]]

    async def kill() -> str:
        await redis_aof.kill_and_restart(1.0)
        return "redis kill -9, restarted after 1 s"

    faults = [*_proxy_faults(proxy, "redis"), kill]
    store: Any = overcast.open_kv(replicated_url(through[0], through[1:], ack=ack, timeout="500ms"))
    try:
        report = asyncio.run(run(store, direct, faults, seconds=SECONDS, every=2.0))
    finally:
        store.close()
        proxy.close()
    assert port_open(redis_aof.port)
    _converged(f"redis + sqlite, ack={ack}", report, minimum=100)


def _pause_faults(server: Server, label: str) -> list[Fault]:
    """SIGSTOP a server for a while (its data stays in memory), then SIGCONT."""

    async def pause() -> str:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(1.5)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        return f"{label} SIGSTOP 1.5 s"

    return [pause]


def _across_clouds(
    kind: str, moto: Server, primary: tuple[str, str], replica: str, other: Server, other_label: str
) -> Any:
    """A run with moto's service as the primary through the proxy (``primary``: its URL, and the
    options reaching it through the proxy, ``{port}`` the proxy's), the other cloud's as the
    replica; proxy faults on moto, SIGSTOP of either server."""
    proxy = FaultProxy(moto.port)
    direct = [primary[0], replica]
    through = primary[0] + primary[1].format(port=proxy.port)
    faults = [*_proxy_faults(proxy, "moto"), *_pause_faults(moto, "moto"), *_pause_faults(other, other_label)]
    opener = overcast.open_kv if kind == "kv" else overcast.open_bucket
    store: Any = opener(replicated_url(through, [replica], timeout="2s"))
    store.sync.create()
    try:
        return asyncio.run(run(store, direct, faults, seconds=SECONDS, every=2.5, writers=3))
    finally:
        store.close()
        proxy.close()


def test_dynamodb_primary_firestore_replica_loses_no_acknowledged_write(
    moto_server: Server, firestore_emulator: Server, tmp_path: Path
) -> None:
    """Across clouds: DynamoDB (moto) through the proxy, Firestore (Google's emulator); faults on
    both: proxy refuse/blackhole/reset on DynamoDB, SIGSTOP of either server."""
    name = f"chaos{os.getpid()}"
    primary = (f"dynamodb://{name}?client=lite", "&endpoint=http://127.0.0.1:{port}&retries=1")
    report = _across_clouds("kv", moto_server, primary, f"firestore://{name}", firestore_emulator, "firestore emulator")
    _converged("dynamodb + firestore, ack=primary", report, minimum=50)


def test_azure_tables_primary_postgres_replica_loses_no_acknowledged_write(
    azurite: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure Tables (Azurite) through the proxy, a durable PostgreSQL (synchronous commit) as
    the replica, killed with -9 and restarted on its data; proxy faults on Azure Tables."""
    from servers.azure import connection_string
    from servers.postgres import restart, start_postgres

    table_port = int(azurite.env["AZURE_STORAGE_CONNECTION_STRING"].split("TableEndpoint=http://127.0.0.1:")[1][:5])
    proxy = FaultProxy(table_port)
    monkeypatch.setenv("OVERCAST_CHAOS_TABLES", connection_string(1, 1, proxy.port))
    postgres = start_postgres(durable=True)
    monkeypatch.setenv("PGUSER", postgres.env["PGUSER"])
    pg_url = f"postgresql://127.0.0.1:{postgres.port}/postgres?store=chaos"
    name = f"chaos{os.getpid()}"
    direct = [f"azuretables://{name}", pg_url]
    through = [f"azuretables://{name}?connection_env=OVERCAST_CHAOS_TABLES", pg_url]

    async def kill() -> str:
        nonlocal postgres
        assert postgres.process is not None
        os.killpg(postgres.process.pid, signal.SIGKILL)
        postgres.process.wait()
        await asyncio.sleep(1.0)
        postgres = await asyncio.to_thread(restart, postgres)
        return "postgresql kill -9, restarted on its data after 1 s"

    store: Any = overcast.open_kv(replicated_url(through[0], through[1:], timeout="2s"))
    store.sync.create()
    try:
        report = asyncio.run(run(store, direct, [*_proxy_faults(proxy, "azure tables"), kill], seconds=SECONDS))
    finally:
        store.close()
        proxy.close()
        postgres.stop()
    _converged("azure tables + postgresql, ack=primary", report, minimum=50)


def test_s3_primary_gcs_replica_bucket_loses_no_acknowledged_write(
    moto_server: Server, gcs_emulator: Server, tmp_path: Path
) -> None:
    """Objects across clouds: S3 (moto) through the proxy, GCS (fake-gcs-server); proxy faults on
    S3, SIGSTOP of either server."""
    name = f"chaos{os.getpid()}"
    primary = (f"s3://{name}/p", "?endpoint=http://127.0.0.1:{port}&retries=1")
    report = _across_clouds("bucket", moto_server, primary, f"gs://{name}/p", gcs_emulator, "fake-gcs-server")
    _converged("s3 + gcs bucket, ack=primary", report, minimum=50)
