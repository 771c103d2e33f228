"""Redis from Debian (redis-server), no persistence."""

from __future__ import annotations

from . import Server, find_program, free_port, missing, spawn


def start_redis() -> Server:
    program = find_program("redis-server")
    if program is None:
        missing("redis-server", "apt-get install -y redis-server")
    port = free_port()
    return spawn(
        "redis",
        [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        port,
        server_env={"OVERCAST_TEST_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
    )
