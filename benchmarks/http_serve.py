"""The example app served by ``overcast run`` against the same ASGI app under bare uvicorn.

Both servers run the users API of ``examples/users`` (FastAPI on the embedded providers)
from the same copied folder, one worker each, no access log, and are driven in turn by
the same client: C keep-alive connections sending ``GET /users/{id}`` (a cached read)
for a fixed time. Rounds alternate between the two servers.

Goal: ``overcast run`` serves at least 0.9x the requests per second of bare uvicorn.

    .venv/bin/python benchmarks/http_serve.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import Result, arguments, interleave, report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not start")


def seed(port: int) -> None:
    body = json.dumps({"id": "u-1", "name": "Ada", "email": "ada@example.com"}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/users", data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        urllib.request.urlopen(request, timeout=5).close()
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise


async def drive(port: int, seconds: float, connections: int) -> float:
    """Requests per second over ``connections`` keep-alive connections for ``seconds``."""
    request = f"GET /users/u-1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected response: {head[:80]!r}")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            counts[index] += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - start)


def main() -> None:
    args = arguments(__doc__ or "")
    seconds, rounds, connections = (1.0, 2, 8) if args.quick else (4.0, 5, 16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "users"
        shutil.copytree(ROOT / "examples" / "users", folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("OVERCAST_TARGET", None)
        ports = {"overcast": free_port(), "uvicorn": free_port()}
        commands = {
            "overcast": [
                str(BIN / "overcast"),
                "run",
                str(folder),
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["overcast"]),
            ],
            "uvicorn": [
                sys.executable,
                "-m",
                "uvicorn",
                "app:api",
                "--app-dir",
                str(folder),
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["uvicorn"]),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
        }
        servers = {
            name: subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, command in commands.items()
        }
        try:
            for name, process in servers.items():
                wait_ready(ports[name], process)
                seed(ports[name])
            ours, base = Result("overcast run", "rq/s"), Result("uvicorn", "rq/s")
            interleave(
                rounds,
                (ours, lambda: asyncio.run(drive(ports["overcast"], seconds, connections))),
                (base, lambda: asyncio.run(drive(ports["uvicorn"], seconds, connections))),
            )
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=10)
    report(
        f"examples/users GET /users/u-1: overcast run vs bare uvicorn ({connections} connections, "
        f"{seconds:g} s x {rounds} rounds, median)",
        [("requests per second", ours, base, ">= 0.90x")],
    )


if __name__ == "__main__":
    main()
