"""Redis from Debian (redis-server), no persistence: one server, and a three-node cluster."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

import pytest

from . import Server, find_program, free_port, missing, spawn, workdir


def _program() -> str:
    program = find_program("redis-server")
    if program is None:
        missing("redis-server", "apt-get install -y redis-server")
    return program


def start_redis() -> Server:
    port = free_port()
    return spawn(
        "redis",
        [_program(), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        port,
        server_env={"OVERCAST_TEST_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
    )


@dataclass
class ClusterServer(Server):
    """A Redis Cluster of three masters (no replicas); ``port`` is the first node's."""

    nodes: list[Server] = field(default_factory=list)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster() -> ClusterServer:
    """Three cluster-enabled redis-servers joined by ``redis-cli --cluster create``;
    OVERCAST_TEST_REDIS_CLUSTER_URL points at the first node (open it with ``?cluster=true``)."""
    program = _program()
    cli = find_program("redis-cli")
    if cli is None:
        missing("redis-cli", "apt-get install -y redis-tools")
    nodes: list[Server] = []
    for _ in range(3):
        port, bus = free_port(), free_port()
        config = workdir() / f"redis-cluster-{port}.conf"
        nodes.append(
            spawn(
                "redis-cluster",
                [program, "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(config), "--save", "",
                 "--appendonly", "no", "--dir", str(workdir())],
                port,
            )
        )  # fmt: skip
    addresses = [f"127.0.0.1:{node.port}" for node in nodes]
    subprocess.run(
        [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [
            subprocess.run(
                [cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, timeout=10
            ).stdout
            for node in nodes
        ]
        if all("cluster_state:ok" in state for state in states):
            break
        time.sleep(0.1)
    else:
        for node in nodes:
            node.stop()
        pytest.fail(f"the Redis cluster on {addresses} did not reach cluster_state:ok", pytrace=False)
    first = nodes[0]
    url = f"redis://127.0.0.1:{first.port}/0"
    return ClusterServer("redis-cluster", first.host, first.port, {"OVERCAST_TEST_REDIS_CLUSTER_URL": url}, nodes=nodes)


#: The session fixtures tests/conftest.py makes from this module: fixture name -> start function.
FIXTURES = {"redis_server": start_redis, "redis_cluster": start_redis_cluster}
