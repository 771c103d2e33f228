"""The soak's load and its measurements: concurrent clients against a real ``overcast run``
process, and what /proc says of that process (resident memory, descriptors, threads, and
its TCP connections to a provider's port)."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def long_run() -> bool:
    return os.environ.get("OVERCAST_LONG", "").strip().lower() in ("1", "true", "yes")


def soak_seconds() -> float:
    """How long the load runs: ``OVERCAST_SOAK_SECONDS``, else 10 s (600 s with ``--long``)."""
    given = os.environ.get("OVERCAST_SOAK_SECONDS", "").strip()
    if given:
        return float(given)
    return 600.0 if long_run() else 10.0


# -- the server process, as /proc sees it ---------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads for {pid}")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to ``port`` (its sockets' inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


@dataclass
class Sample:
    at: float
    rss_kib: int
    fds: int
    threads: int
    connections: int


def sample(pid: int, provider_port: int | None, started: float) -> Sample:
    return Sample(
        at=time.monotonic() - started,
        rss_kib=rss_kib(pid),
        fds=descriptors(pid),
        threads=threads(pid),
        connections=connections_to(pid, provider_port) if provider_port else 0,
    )


# -- the load -------------------------------------------------------------------------------


@dataclass
class Load:
    """What the clients did: every acknowledged create, every status, every latency."""

    created: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


async def _one(client: httpx.AsyncClient, load: Load, rng: random.Random, started: float) -> None:
    """One request of the mix: a new user (a conditional write and a publish), a duplicate
    (the condition refuses it: 409), a read of a known user, a read of a missing one."""
    roll = rng.random()
    known = load.ids
    t0 = time.monotonic()
    if roll < 0.4 or not known:
        uid = f"u-{uuid.uuid4().hex[:12]}"
        user = {"id": uid, "name": f"name {uid}", "email": f"{uid}@example.com"}
        reply = await client.post("/users", json=user)
        expected = 201
    elif roll < 0.5:
        uid = rng.choice(known)
        reply = await client.post("/users", json=load.created[uid])
        expected = 409
    elif roll < 0.9:
        uid = rng.choice(known)
        reply = await client.get(f"/users/{uid}")
        expected = 200
    else:
        uid = f"missing-{uuid.uuid4().hex[:8]}"
        reply = await client.get(f"/users/{uid}")
        expected = 404
    load.latencies.append((t0 - started, time.monotonic() - t0))
    load.statuses[reply.status_code] = load.statuses.get(reply.status_code, 0) + 1
    if reply.status_code >= 500:
        load.errors.append(f"{reply.status_code} {reply.request.method} {reply.request.url.path}: {reply.text[:200]}")
    elif reply.status_code != expected:
        load.unexpected.append(f"{reply.status_code} (not {expected}) {reply.request.url.path}: {reply.text[:200]}")
    if reply.status_code == 201:
        load.created[uid] = user
        load.ids.append(uid)
    elif expected == 200 and reply.status_code == 200 and reply.json() != load.created[uid]:
        load.unexpected.append(f"GET {uid} read {reply.json()} instead of {load.created[uid]}")


async def run_load(base: str, seconds: float, concurrency: int, load: Load, seed: int = 19) -> None:
    """``concurrency`` clients, each sending one request after another until ``seconds`` have passed."""
    started = time.monotonic()
    # idle connections dropped by the client before uvicorn's keep-alive timeout (5 s) closes them:
    # else a request sent as the server closes fails with ReadError, a race of HTTP/1.1, not the app's
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def client_loop(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            while time.monotonic() - started < seconds:
                await _guarded(client, load, rng, started)

        await asyncio.gather(*(client_loop(n) for n in range(concurrency)))


async def _guarded(client: httpx.AsyncClient, load: Load, rng: random.Random, started: float) -> None:
    """One request; a connection the server broke is an error of the run, counted, not a crash of the load."""
    try:
        await _one(client, load, rng, started)
    except httpx.TransportError as exc:
        load.errors.append(f"transport error at {time.monotonic() - started:.1f} s: {exc!r}")


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
