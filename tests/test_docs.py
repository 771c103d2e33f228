"""Every ```python block in docs/ runs, so the examples stay true.

Each block runs by itself in a fresh interpreter in an empty folder. A block that is
not meant to run (a fragment of a larger app) is fenced ```python no-run. A block that
talks to a real server names its test fixture, e.g. ```python needs=moto_server: the server
is started first and its environment (AWS_ENDPOINT_URL, ...) reaches the block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str, tuple[str, ...]]]:
    found: list[tuple[str, str, tuple[str, ...]]] = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            info = match.group(1).split()
            if "no-run" in info:
                continue
            needs = tuple(word.removeprefix("needs=") for word in info if word.startswith("needs="))
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(DOCS)}:{line}", match.group(2), needs))
    return found


BLOCKS = blocks()


def test_the_docs_have_examples() -> None:
    pages = {name.split(":")[0] for name, _, _ in BLOCKS}
    for page in [
        "configuration.md",
        "resources/kv.md",
        "resources/blob.md",
        "resources/queues.md",
        "resources/cache.md",
        "resources/secrets.md",
        "clouds/local.md",
        "clouds/redis.md",
        "clouds/postgres.md",
        "telemetry.md",
        "http_errors.md",
    ]:
        assert page in pages, f"{page} has no runnable example"


@pytest.mark.parametrize(("where", "code", "needs"), BLOCKS, ids=[name for name, _, _ in BLOCKS])
def test_block_runs(
    where: str, code: str, needs: tuple[str, ...], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for fixture in needs:
        request.getfixturevalue(fixture)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERCAST_") or k.startswith("OVERCAST_TEST_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr}"
