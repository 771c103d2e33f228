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

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import Result, arguments, report
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


def measured(pid: int, cpu: Result, run: Callable[[], float], seconds: float) -> Callable[[], float]:
    """``run`` (a request rate), also recording the server's CPU microseconds per request in ``cpu``."""

    def once() -> float:
        before = cpu_seconds(pid)
        rate = run()
        cpu.samples.append((cpu_seconds(pid) - before) / (rate * seconds) * 1e6)
        return rate

    return once


def driver(port: int, seconds: float, connections: int) -> Callable[[], float]:
    """One round against the server on ``port``: its request rate."""
    return lambda: asyncio.run(drive(port, seconds, connections))


def rotated(rounds: int, *runs: tuple[Result, Callable[[], float]]) -> None:
    """Like ``_common.interleave``, each round starting one measurement further on."""
    for turn in range(rounds):
        for result, run in runs[turn % len(runs) :] + runs[: turn % len(runs)]:
            result.samples.append(run())


def main() -> None:
    args = arguments(__doc__ or "")
    seconds, rounds, connections = (1.0, 2, 8) if args.quick else (4.0, 7, 16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "users"
        shutil.copytree(ROOT / "examples" / "users", folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
        env.pop("OVERCAST_TARGET", None)
        ports = {"console": free_port(), "idle": free_port(), "plain": free_port()}
        flags: dict[str, list[str]] = {"console": [], "idle": [], "plain": ["--no-console"]}
        servers = {
            name: subprocess.Popen(
                [sys.executable, "-m", "overcast", "dev", str(folder), "--no-reload", "--port", str(ports[name])]
                + flags[name],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in ports
        }
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
            ours, idle = Result("console, feed followed", "rq/s"), Result("console, no feed", "rq/s")
            base = Result("--no-console", "rq/s")
            cpu = {name: Result(name, "us") for name in ports}
            rotated(
                rounds,
                *(
                    (result, measured(servers[name].pid, cpu[name], driver(ports[name], seconds, connections), seconds))
                    for name, result in (("console", ours), ("idle", idle), ("plain", base))
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
    report(
        f"overcast dev, examples/users GET /users/u-1: console on with its feed followed vs --no-console "
        f"({connections} connections, {seconds:g} s x {rounds} rounds, median; {seen} events streamed)",
        [
            ("rq/s, console and feed followed", ours, base, ">= 0.95x"),
            ("rq/s, console, no page open", idle, base, ">= 0.95x"),
            ("server CPU/request, console+feed", cpu["console"], cpu["plain"], "<= 1.05x"),
            ("server CPU/request, console", cpu["idle"], cpu["plain"], "<= 1.05x"),
        ],
    )
    if seen == 0:
        raise SystemExit("the console's feed streamed no event: it was not connected")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--follow"]:  # the feed's reader, run in a process of its own
        follow(int(sys.argv[2]))
    else:
        main()
