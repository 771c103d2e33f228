"""Real servers for the tests: started once per test process (each xdist worker has its own),
on free loopback ports, stopped when the process ends.

Each family has a module here (``aws``, ``azure``, ``gcp``, ``redis``, ``postgres``) with a
``start_*`` function returning a :class:`Server`. ``tests/conftest.py`` exposes each as a
session fixture. A server that is not installed fails the test with the command that installs
it (``scripts/test`` installs everything): it never skips.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["Server", "find_program", "free_port", "missing", "port_open", "spawn", "workdir"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    """A running server: where it listens and the environment its clients need."""

    name: str
    host: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def apply_env(self) -> None:
        """Point clients in this process at the server (each worker has its own servers)."""
        os.environ.update(self.env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def missing(what: str, install: str) -> NoReturn:
    pytest.fail(f"{what} is not installed; run scripts/test (it runs: {install})", pytrace=False)


def find_program(name: str, *extra_dirs: Path) -> str | None:
    for directory in extra_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


_workdir: Path | None = None


def workdir() -> Path:
    """A scratch folder for this process's servers (logs, data), removed at exit."""
    global _workdir
    if _workdir is None:
        _workdir = Path(tempfile.mkdtemp(prefix="overcast-servers-"))
        os.chmod(_workdir, 0o755)
        atexit.register(shutil.rmtree, _workdir, True)
    return _workdir


def spawn(
    name: str,
    command: Sequence[str],
    port: int,
    *,
    ready: Callable[[], bool] | None = None,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    preexec: Callable[[], None] | None = None,
    server_env: dict[str, str] | None = None,
) -> Server:
    """Start ``command`` in its own process group and wait until ``ready()`` (default: the
    port accepts connections). Its output goes to a log file quoted if it fails to start."""
    log = workdir() / f"{name}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
        )
    server = Server(name, "127.0.0.1", port, dict(server_env or {}), process, log)
    atexit.register(server.stop)
    check = ready or (lambda: port_open(port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if check():
                return server
        except Exception:
            pass
        time.sleep(0.05)
    server.stop()
    tail = log.read_text(errors="replace")[-3000:]
    pytest.fail(
        f"{name} did not start on port {port} within {timeout:.0f} s: {' '.join(command)}\n{tail}", pytrace=False
    )
