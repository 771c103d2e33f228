"""The dev server's request rate with the console on and its event feed connected, against
the same dev server started with ``--no-console``, in the same run (and, to tell the
feed's cost from the console's, a third server with the console on and no page open).

Both servers run the users API of ``examples/users`` under ``overcast dev --no-reload``
from one copied folder. While the first server is driven, a reader in a process of its own
(as a browser would be) follows its event feed (``/_overcast/events/stream``), so every
request is also recorded and streamed. Rounds alternate between the two servers; the client sends ``GET
/users/{id}`` (a cached read) over C keep-alive connections for a fixed time.

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

from _common import Result, arguments, interleave, report
from http_serve import drive, free_port, seed, wait_ready

ROOT = Path(__file__).resolve().parents[1]




async def follow_feed(port: int, until: float, seen: list[int]) -> None:
    """Read the console's event feed until ``until``, reconnecting as a browser does; count events."""
    while time.perf_counter() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = (
            f"GET /_overcast/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        try:
            while time.perf_counter() < until:
                chunk = await asyncio.wait_for(reader.read(1 << 16), max(0.01, until - time.perf_counter()))
                if not chunk:
                    break
                seen[0] += chunk.count(b"\ndata: ")
        except TimeoutError:
            pass
        finally:
            writer.close()


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


def drive_with_feed(port: int, seconds: float, connections: int, seen: list[int]) -> float:
    """Drive the server while another process (as a browser would be) follows its feed."""
    follower = subprocess.Popen(
        [sys.executable, __file__, "--follow", str(port), str(seconds + 0.5)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(0.3)  # the feed is connected before the load starts
    rate = asyncio.run(drive(port, seconds, connections))
    out, _ = follower.communicate(timeout=30)
    seen[0] += int(out.strip() or 0)
    return rate


def main() -> None:
    args = arguments(__doc__ or "")
    seconds, rounds, connections = (1.0, 2, 8) if args.quick else (4.0, 5, 16)
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
        seen = [0]
        try:
            for name, process in servers.items():
                wait_ready(ports[name], process)
                seed(ports[name])
            ours, idle = Result("console, feed followed", "rq/s"), Result("console, no feed", "rq/s")
            base = Result("--no-console", "rq/s")
            cpu = {name: Result(name, "us") for name in ports}
            pids = {name: process.pid for name, process in servers.items()}
            interleave(
                rounds,
                (
                    ours,
                    measured(
                        pids["console"],
                        cpu["console"],
                        lambda: drive_with_feed(ports["console"], seconds, connections, seen),
                        seconds,
                    ),
                ),
                (
                    idle,
                    measured(
                        pids["idle"],
                        cpu["idle"],
                        lambda: asyncio.run(drive(ports["idle"], seconds, connections)),
                        seconds,
                    ),
                ),
                (
                    base,
                    measured(
                        pids["plain"],
                        cpu["plain"],
                        lambda: asyncio.run(drive(ports["plain"], seconds, connections)),
                        seconds,
                    ),
                ),
            )
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=10)
    report(
        f"overcast dev, examples/users GET /users/u-1: console on with its feed followed vs --no-console "
        f"({connections} connections, {seconds:g} s x {rounds} rounds, median; {seen[0]} events streamed)",
        [
            ("rq/s, console and feed followed", ours, base, ">= 0.95x"),
            ("rq/s, console, no page open", idle, base, ">= 0.95x"),
            ("server CPU/request, console+feed", cpu["console"], cpu["plain"], "<= 1.05x"),
            ("server CPU/request, console", cpu["idle"], cpu["plain"], "<= 1.05x"),
        ],
    )
    if seen[0] == 0:
        raise SystemExit("the console's feed streamed no event: it was not connected")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--follow"]:  # the feed's reader, run in a process of its own
        counted = [0]
        asyncio.run(follow_feed(int(sys.argv[2]), time.perf_counter() + float(sys.argv[3]), counted))
        print(counted[0])
    else:
        main()
