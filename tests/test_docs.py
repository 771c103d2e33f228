"""Every ```python block in docs/ runs, so the examples stay true.

Each block runs by itself in a fresh interpreter in an empty folder. A block that is
not meant to run (a fragment of a larger app) is fenced ```python no-run.
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


def blocks() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if "no-run" in match.group(1).split():
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(DOCS)}:{line}", match.group(2)))
    return found


BLOCKS = blocks()


def test_the_docs_have_examples() -> None:
    pages = {name.split(":")[0] for name, _ in BLOCKS}
    for page in [
        "configuration.md",
        "resources/kv.md",
        "resources/blob.md",
        "resources/queues.md",
        "resources/cache.md",
        "resources/secrets.md",
        "clouds/local.md",
    ]:
        assert page in pages, f"{page} has no runnable example"


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_block_runs(where: str, code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERCAST_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr}"
