"""The member pairs replicated stores are tested on, each member on its real server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

#: scheme -> (server fixture or None, (tmp, name) -> member URL)
MEMBERS: dict[str, tuple[str | None, Callable[[Path, str], str]]] = {
    "sqlite": (None, lambda tmp, name: f"sqlite:///{tmp / name}.db"),
    "memory": (None, lambda tmp, name: f"memory://{name}"),
    "dynamodb": ("moto_server", lambda tmp, name: f"dynamodb://{name}?client=lite"),
    "firestore": ("firestore_emulator", lambda tmp, name: f"firestore://{name}"),
    "azuretables": ("azurite", lambda tmp, name: f"azuretables://{name.replace('-', '')}"),
    "postgresql": ("postgres_server", lambda tmp, name: f"{os.environ['OVERCAST_TEST_POSTGRES_URL']}?store={name}"),
    "redis": ("redis_server", lambda tmp, name: f"{os.environ['OVERCAST_TEST_REDIS_URL']}?prefix={name}"),
}

#: (primary, replica) pairs every replicated suite runs on
KV_PAIRS = [
    ("sqlite", "sqlite"),
    ("memory", "sqlite"),
    ("dynamodb", "firestore"),
    ("azuretables", "postgresql"),
    ("redis", "sqlite"),
]


def replicated_url(primary: str, replicas: list[str], **options: str) -> str:
    """The ``replicated://`` URL over member URLs (what overcast.toml's table form becomes)."""
    query = {"primary": primary, "replicas": " ".join(replicas), **options}
    return "replicated://r?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def member_urls(pair: tuple[str, ...], tmp: Path, name: str | None = None) -> list[str]:
    name = name or f"kv-{uuid.uuid4().hex[:10]}"
    return [MEMBERS[scheme][1](tmp, f"{name}-{i}") for i, scheme in enumerate(pair)]

#: bucket scheme -> (server fixture or None, (tmp, name) -> member URL)
BUCKETS: dict[str, tuple[str | None, Callable[[Path, str], str]]] = {
    "memory": (None, lambda tmp, name: f"memory://{name}"),
    "file": (None, lambda tmp, name: f"file:///{tmp / name}"),
    "s3": ("moto_server", lambda tmp, name: f"s3://{name}/some/prefix"),
    "gs": ("gcs_emulator", lambda tmp, name: f"gs://{name}/some/prefix"),
}
