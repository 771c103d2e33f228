"""The dev server's request rate with the console on and its event feed connected, against
the same dev server started with ``--no-console``, in the same run (and, to tell the
feed's cost from the console's, a third server with the console on and no page open).

The servers run the users API of ``examples/users`` under ``overcast dev --no-reload``
from one copied folder. For the whole run a reader in a process of its own (as a browser
tab left open would be) follows the first server's event feed
(``/_overcast/events/stream``, reconnecting with ``Last-Event-ID`` as a browser does), so
every request it serves is also recorded and streamed. Rounds alternate between the
servers, each round starting with the next one (so none always runs after the same
other); the client sends ``GET /users/{id}`` (a cached read) over C keep-alive
connections for a fixed time.

Goal: with the console and its feed, at least 0.95x the requests per second without it.
The server's CPU time per request (from ``/proc``) is reported too: on a busy machine it
varies far less than the request rate, so it tells the console's own cost more surely.

    .venv/bin/python benchmarks/console_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import Result, report
from http_serve import drive, free_port, seed, wait_ready

ROOT = Path(__file__).resolve().parents[1]


async def follow_feed(port: int, seen: list[int]) -> None:
    """Read the console's event feed until cancelled, reconnecting as a browser does (with
    the last id seen); count events."""
    last = "0"
    while True:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (
            f"GET /_overcast/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Accept: text/event-stream\r\nLast-Event-ID: {last}\r\n\r\n"
        )
        writer.write(request.encode())
        try:
            while chunk := await reader.read(1 << 16):
                seen[0] += chunk.count(b"\ndata: ")
                ids = chunk.rsplit(b"\nid: ", 1)
                if len(ids) == 2 and b"\n" in ids[1]:  # a whole id line (a read may end in the middle of one)
                    last = ids[1].split(b"\n", 1)[0].decode()
        finally:
            writer.close()


def follow(port: int) -> None:
    """The feed's reader (run in a process of its own): follows until SIGTERM, then prints the count."""
    import signal

    async def run() -> None:
        seen = [0]
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await follow_feed(port, seen)
        except asyncio.CancelledError:
            print(seen[0], flush=True)

    asyncio.run(run())


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, cpu: Result, run: Callable[[], tuple[float, float]]) -> Callable[[], float]:
    """``run`` (a request rate and the seconds it was measured over), also recording the
    server's CPU microseconds per request in ``cpu``."""

    def once() -> float:
        before = cpu_seconds(pid)
        rate, seconds = run()
        cpu.samples.append((cpu_seconds(pid) - before) / (rate * seconds) * 1e6)
        return rate

    return once


def driver(port: int, seconds: float, connections: int) -> Callable[[], tuple[float, float]]:
    """One round against the server on ``port``: its request rate, and the seconds it took."""

    def run() -> tuple[float, float]:
        start = time.perf_counter()
        rate = asyncio.run(drive(port, seconds, connections))
        return rate, time.perf_counter() - start

    return run


def rotated(rounds: int, *runs: tuple[Result, Callable[[], float]]) -> None:
    """Like ``_common.interleave``, each round starting one measurement further on."""
    for turn in range(rounds):
        for result, run in runs[turn % len(runs) :] + runs[: turn % len(runs)]:
            result.samples.append(run())


SERVERS = ("console", "idle", "plain")
FLAGS: dict[str, list[str]] = {"console": [], "idle": [], "plain": ["--no-console"]}


def start_servers(folder: Path, wrap: list[str]) -> tuple[dict[str, int], dict[str, subprocess.Popen[bytes]]]:
    """The three dev servers of the users API (each under ``wrap``, e.g. valgrind), on free ports;
    under valgrind with one hash seed, so their dictionaries probe alike."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if wrap:
        env["PYTHONHASHSEED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env.pop("OVERCAST_TARGET", None)
    ports = {name: free_port() for name in SERVERS}
    servers = {
        name: subprocess.Popen(
            [*wrap, sys.executable, "-m", "overcast", "dev", str(folder), "--no-reload", "--port", str(ports[name])]
            + FLAGS[name],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in SERVERS
    }
    return ports, servers


def paired(ours: Result, base: Result) -> str:
    """The median and range of the per-round ratios (rounds next to each other share the machine's load)."""
    ratios = sorted(o / b for o, b in zip(ours.samples, base.samples, strict=True))
    return f"{statistics.median(ratios):.2f}x (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not a measurement")
    parser.add_argument(
        "--instructions", action="store_true", help="count the servers' instructions per request under valgrind"
    )
    args = parser.parse_args()
    if args.instructions:
        instructions(100 if args.quick else 600)
        return
    seconds, rounds, connections = (1.0, 2, 8) if args.quick else (2.0, 15, 16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = copy_app(Path(tmp))
        ports, servers = start_servers(folder, [])
        follower: subprocess.Popen[str] | None = None
        seen = 0
        try:
            for name, process in servers.items():
                wait_ready(ports[name], process)
                seed(ports[name])
            follower = subprocess.Popen(
                [sys.executable, __file__, "--follow", str(ports["console"])], stdout=subprocess.PIPE, text=True
            )
            time.sleep(1.0)  # started and connected before the first round
            rates = {name: Result(name, "rq/s") for name in SERVERS}
            cpu = {name: Result(name, "us") for name in SERVERS}
            rotated(
                rounds,
                *(
                    (
                        rates[name],
                        measured(servers[name].pid, cpu[name], driver(ports[name], seconds, connections)),
                    )
                    for name in SERVERS
                ),
            )
        finally:
            if follower is not None:
                follower.terminate()
                out, _ = follower.communicate(timeout=30)
                seen = int(out.strip() or 0)
            for process in servers.values():
                process.terminate()
                process.wait(timeout=10)
    show(rates, cpu, f"{connections} connections, {seconds:g} s x {rounds} rounds, median; {seen} events streamed")
    if seen == 0:
        raise SystemExit("the console's feed streamed no event: it was not connected")


def show(rates: dict[str, Result], cpu: dict[str, Result], how: str) -> None:
    """The table of ratios of medians, then the per-round ratios."""
    report(
        f"overcast dev, examples/users GET /users/u-1: console on with its feed followed vs --no-console ({how})",
        [
            ("rq/s, console and feed followed", rates["console"], rates["plain"], ">= 0.95x"),
            ("rq/s, console, no page open", rates["idle"], rates["plain"], ">= 0.95x"),
            ("server CPU/request, console+feed", cpu["console"], cpu["plain"], "<= 1.05x"),
            ("server CPU/request, console", cpu["idle"], cpu["plain"], "<= 1.05x"),
        ],
    )
    print(
        f"per-round ratios, median: rq/s feed {paired(rates['console'], rates['plain'])}, "
        f"no page {paired(rates['idle'], rates['plain'])}; CPU/request feed {paired(cpu['console'], cpu['plain'])}, "
        f"no page {paired(cpu['idle'], cpu['plain'])}"
    )


def ready(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a (slow: valgrind's) server to answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wait_ready(port, process)
            return
        except SystemExit:
            if process.poll() is not None:
                raise
    raise SystemExit(f"server on {port} did not start in {timeout:g} s")


def copy_app(tmp: Path) -> Path:
    folder = tmp / "users"
    shutil.copytree(ROOT / "examples" / "users", folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    return folder


async def drive_count(port: int, count: int, connections: int, method: str = "GET") -> None:
    """Send ``count`` requests over ``connections`` keep-alive connections (a fixed amount of
    work), without a timeout (a server under valgrind is slow); ``POST`` creates the user read."""
    left = [count]
    request = f"GET /users/u-1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    if method == "POST":
        body = b'{"id": "u-1", "name": "Ada", "email": "ada@example.com"}'
        request = (
            f"POST /users HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))


def instructions(count: int) -> None:
    """Each server's instructions per request, counted by valgrind's callgrind over ``count``
    requests after a warm-up (``callgrind_control`` zeroes the counts before and dumps them after):
    what the console costs, whatever else the machine is doing."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = copy_app(Path(tmp))
        out = Path(tmp) / "callgrind"
        out.mkdir()
        wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/%p", "--dump-instr=no"]
        ports, servers = start_servers(folder, wrap)
        follower: subprocess.Popen[str] | None = None
        counted: dict[str, float] = {}
        try:
            for name, process in servers.items():
                ready(ports[name], process, timeout=900)
                asyncio.run(drive_count(ports[name], 1, 1, method="POST"))  # the user read (first calls are slow)
            follower = subprocess.Popen(
                [sys.executable, __file__, "--follow", str(ports["console"])], stdout=subprocess.PIPE, text=True
            )
            for name in SERVERS:
                asyncio.run(drive_count(ports[name], count // 4, 4))  # warm-up: caches, first-call paths
                time.sleep(2.0)  # the feed has written the warm-up's events
                pid = servers[name].pid
                subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
                asyncio.run(drive_count(ports[name], count, 4))
                time.sleep(2.0)  # and the measured ones
                subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
                dumps = sorted(out.glob(f"{pid}.*"), key=lambda path: int(path.suffix[1:]))
                totals = re.search(r"^summary: (\d+)", dumps[-1].read_text(), re.MULTILINE)
                assert totals is not None, dumps[-1]
                counted[name] = int(totals.group(1)) / count
        finally:
            if follower is not None:
                follower.terminate()
                follower.communicate(timeout=60)
            for process in servers.values():
                process.terminate()
                process.wait(timeout=120)
    print(f"\novercast dev, examples/users GET /users/u-1: instructions per request (callgrind, {count} requests)")
    print(f"{'measure':<34} {'console':>14} {'--no-console':>14} {'ratio':>7}")
    for name, label in (("console", "instr/request, console and feed"), ("idle", "instr/request, console, no page")):
        ratio = counted[name] / counted["plain"]
        print(f"{label:<34} {counted[name]:>14,.0f} {counted['plain']:>14,.0f} {ratio:>6.3f}x  (reported)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--follow"]:  # the feed's reader, run in a process of its own
        follow(int(sys.argv[2]))
    else:
        main()
