"""The local family's embedded providers under the conformance suites: SQLite, files, memory and
the environment; nothing to start."""

from __future__ import annotations

from pathlib import Path

from ..providers import Case


def _sqlite(tmp: Path, name: str) -> str:
    return f"sqlite:///{tmp / name}.db"


def _file(tmp: Path, name: str) -> str:
    return f"file://{tmp / name}"


def _memory(tmp: Path, name: str) -> str:
    return f"memory://{name}"


def _env(tmp: Path, name: str) -> str:
    return f"env://?file={tmp / name}.env"


CASES: list[Case] = [
    Case("kv", "sqlite", _sqlite),
    Case("kv", "memory", _memory),
    Case("bucket", "file", _file),
    Case("bucket", "memory", _memory),
    Case("queue", "sqlite", _sqlite),
    Case("queue", "memory", _memory),
    Case("topic", "sqlite", _sqlite),
    Case("topic", "memory", _memory),
    Case("cache", "memory", _memory),
    Case("secret", "env", _env),
    Case("secret", "memory", _memory),
]
