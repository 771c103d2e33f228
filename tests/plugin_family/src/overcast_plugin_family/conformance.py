"""The plugin family's cases under Overcast's conformance suites (tests/ is on sys.path there)."""

from __future__ import annotations

from pathlib import Path

from conformance.providers import Case


def _file(scheme: str) -> object:
    def url(tmp: Path, name: str) -> str:
        return f"{scheme}:///{tmp / name}.db"

    return url


CASES: list[Case] = [
    Case("kv", "plugkv", _file("plugkv")),  # type: ignore[arg-type]
    Case("queue", "plugq", _file("plugq")),  # type: ignore[arg-type]
]
