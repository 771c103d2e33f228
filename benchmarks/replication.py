"""Replicated KV stores on two real Redis servers (Debian's redis-server, started here).

Three measurements, each against its baseline in the same run:
- a replicated write against a plain write on the same primary (``ack = "primary"``,
  goal <= 1.3x), and ``ack = "all"`` against the slower member's plain write (goal <= 1.1x),
  both from async code, rounds alternating; each twice: *with the replicator* shipping in
  the background of the same process (what a long-lived process pays), and the *ack path
  alone* (the replicator held: what a request pays when shipping runs elsewhere, e.g. in
  the scheduled ``overcast-replicate`` invocation) — see ``write_ratios``;
- replication lag (a write's clock to the replica applying it) at 200 writes/s, p50/p99
  (goal p99 < 500 ms);
- failover time with the default deadline: the primary killed (connections refused) or
  stopped with SIGSTOP (nothing answers), time from the fault to the first acknowledged
  write, p50/p99 (goal p99 < 1 s).

Also the requests a replicated write costs, counted by the Redis servers themselves
(``INFO commandstats``: every write request here is one script, ``EVALSHA``): those
made before the write is acknowledged, then those of the replicator shipping it.

    .venv/bin/python benchmarks/replication.py [--quick] [--only writes|lag|failover]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import quote

from _common import Result, report

import overcast

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redis:
    def __init__(self, folder: str) -> None:
        self.port, self.folder = free_port(), folder
        self.start()

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.folder],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)

    def url(self, prefix: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix={prefix}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class DelayProxy:
    """Adds ``delay`` seconds each way between a client and a server on loopback, as a network
    between zones or clouds would (loopback alone makes every request CPU-bound)."""

    def __init__(self, target: int, delay: float) -> None:
        import threading

        self.port, self.target, self.delay = free_port(), target, delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            self.loop.run_until_complete(asyncio.start_server(self.client, "127.0.0.1", self.port))
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer), return_exceptions=True)

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await asyncio.sleep(self.delay)
            writer.write(data)
        writer.close()

    def url(self, prefix: str) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix={prefix}"


def replicated(primary: str, replica: str, **options: str) -> str:
    query = {"primary": primary, "replicas": replica, **options}
    return "replicated://bench?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


async def per_write_us(store: Any, n: int, *, fresh: bool = False) -> float:
    """µs per put, over 50 keys in turn, or (``fresh``) over keys this process has not seen."""
    start = time.perf_counter()
    for i in range(n):
        await store.put(f"n{uuid.uuid4().hex}" if fresh else f"k{i % 50}", DOC)
    return (time.perf_counter() - start) / n * 1e6


async def write_ratios(
    a: Any, b: Any, n: int, rounds: int, where: str = "", *, held: bool = False
) -> list[tuple[str, Result, Result, str]]:
    """Replicated writes against plain writes on the same servers, rounds alternating.

    Without ``held``, *with the replicator*: each replicated store's replicator ships in the
    background (on Overcast's portal loop, in this process, on the same CPU) while the
    next writes are timed, as in a long-lived process. With ``held``, the *ack path alone*:
    the replicators are stopped (``replicator.stop()``) before any write, so nothing ships
    in this process and only what a write pays before its acknowledgement is timed (the
    write and its log entry); the log keeps the writes for a later scan, as the scheduled
    ``overcast-replicate`` run of a deployed function would ship them.
    """
    plain_a, plain_b = overcast.open_kv(a.url("plain")), overcast.open_kv(b.url("plain"))
    tag = "h" if held else "r"
    one: Any = overcast.open_kv(replicated(a.url(f"{tag}1"), b.url(f"{tag}1")))
    both: Any = overcast.open_kv(replicated(a.url(f"{tag}2"), b.url(f"{tag}2"), ack="all"))
    if held:
        one.replicator.stop()
        both.replicator.stop()
    names = ("plain", "slower", "primary", "all", "plain new", "primary new")
    results = {name: Result(name, "µs") for name in names}
    for store in (plain_a, plain_b, one, both):  # connections open, versions known
        await per_write_us(store, 100)
    for _ in range(rounds):
        results["plain"].samples.append(await per_write_us(plain_a, n))
        results["primary"].samples.append(await per_write_us(one, n))
        results["slower"].samples.append(max(await per_write_us(plain_a, n), await per_write_us(plain_b, n)))
        results["all"].samples.append(await per_write_us(both, n))
        results["plain new"].samples.append(await per_write_us(plain_a, n, fresh=True))
        results["primary new"].samples.append(await per_write_us(one, n, fresh=True))
    one.close()
    both.close()
    how = ", ack path alone" if held else ", with the replicator"
    return [
        (f"write, ack=primary{where}{how}", results["primary"], results["plain"], "<= 1.3x of a plain write"),
        (f"write, ack=all{where}{how}", results["all"], results["slower"], "<= 1.1x of the slower member"),
        (f"write of a new key, ack=primary{where}{how}", results["primary new"], results["plain new"], "<= 1.3x"),
    ]


async def lag(a: Redis, b: Redis, seconds: float) -> list[float]:
    store: Any = overcast.open_kv(replicated(a.url("lag"), b.url("lag")))
    until = time.monotonic() + seconds
    i = 0
    while time.monotonic() < until:
        await store.put(f"k{i % 500}", {**DOC, "i": i})
        i += 1
        await asyncio.sleep(1 / 200)
    await asyncio.sleep(0.5)
    lags = sorted(store.replicator.lags)
    store.close()
    return lags


async def failover(a: Redis, b: Redis, how: str, times: int) -> list[float]:
    """Seconds from the fault to the first acknowledged write, ``times`` times."""
    found = []
    for attempt in range(times):
        store: Any = overcast.open_kv(replicated(a.url(f"fo-{how}-{attempt}"), b.url(f"fo-{how}-{attempt}")))
        await store.put("warm", DOC)
        if how == "kill":
            a.stop()
        else:
            os.kill(a.process.pid, signal.SIGSTOP)
        start = time.perf_counter()
        while True:
            try:
                await store.put("k", DOC)
                break
            except overcast.errors.Unavailable:
                continue
        found.append(time.perf_counter() - start)
        if how == "kill":
            a.start()
        else:
            os.kill(a.process.pid, signal.SIGCONT)
        store.close()
    return found


def _redis(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port)


def _scripts(port: int) -> int:
    """Script calls (EVALSHA, EVAL) the server at ``port`` took since its last reset."""
    client = _redis(port)
    stats = client.info("commandstats")
    client.close()
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def _reset(*ports: int) -> None:
    for port in ports:
        client = _redis(port)
        client.config_resetstat()
        client.close()


async def requests_per_write(a: Redis, b: Redis, n: int) -> list[str]:
    """Requests per write on each server: a plain write; a replicated one until acknowledged
    (its replicator held), then the replicator's share; hot keys and keys not seen before."""
    lines = []
    for fresh in (False, True):
        tag = uuid.uuid4().hex[:6]
        plain: Any = overcast.open_kv(a.url(f"count-plain-{tag}"))
        store: Any = overcast.open_kv(replicated(a.url(f"count-{tag}"), b.url(f"count-{tag}")))
        store.replicator.stop()  # held: what the servers count first is the writes' own
        await per_write_us(plain, 50)
        await per_write_us(store, 50)
        await store.replicate()
        _reset(a.port, b.port)
        await per_write_us(plain, n, fresh=fresh)
        plain_a = _scripts(a.port) / n
        _reset(a.port, b.port)
        await per_write_us(store, n, fresh=fresh)
        acked = (_scripts(a.port) / n, _scripts(b.port) / n)
        _reset(a.port, b.port)
        await store.replicate()
        shipped = (_scripts(a.port) / n, _scripts(b.port) / n)
        store.close()
        what = "a key not seen before" if fresh else "a hot key"
        lines.append(
            f"requests per write of {what}: plain {plain_a:.2f}; ack=primary {acked[0]:.2f} on the primary "
            f"(+{acked[1]:.2f} on the replica) before the ack, then the replicator {shipped[0]:.2f} on the primary "
            f"+ {shipped[1]:.2f} on the replica"
        )
    return lines


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _arguments() -> Any:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not a measurement")
    parser.add_argument("--only", choices=("writes", "lag", "failover"), help="run one measurement")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    n, rounds = (100, 3) if args.quick else (500, 15)
    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(folder + "/a")
        a, b = Redis(folder + "/a"), Redis(folder)
        try:
            if args.only in (None, "writes"):
                for line in asyncio.run(requests_per_write(a, b, n)):
                    print(line)
                rows = asyncio.run(write_ratios(a, b, n, rounds))
                rows += asyncio.run(write_ratios(a, b, n, rounds, held=True))  # a run of its own: nothing ships
                near, far = DelayProxy(a.port, 0.0005), DelayProxy(b.port, 0.0005)
                rows += asyncio.run(write_ratios(near, far, n // 5, rounds, " (+1 ms RTT)"))
                rows += asyncio.run(write_ratios(near, far, n // 5, rounds, " (+1 ms RTT)", held=True))
                report("Replicated writes against plain writes (Redis + Redis, async, µs per write)", rows)
            if args.only in (None, "lag"):
                lags = asyncio.run(lag(a, b, 2.0 if args.quick else 20.0))
                p50, p99 = pct(lags, 0.5) * 1000, pct(lags, 0.99) * 1000
                print(f"\nreplication lag at 200 writes/s over {len(lags)} applied writes: "
                      f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal p99 < 500 ms)")  # fmt: skip
            if args.only in (None, "failover"):
                times = 3 if args.quick else 20
                for how in ("kill", "sigstop"):
                    spent = asyncio.run(failover(a, b, how, times))
                    print(f"failover, primary {how}: p50 {statistics.median(spent) * 1000:.0f} ms, "
                          f"p99 {pct(spent, 0.99) * 1000:.0f} ms over {times} faults (goal p99 < 1 s)")  # fmt: skip
        finally:
            a.stop()
            b.stop()


if __name__ == "__main__":
    main()
