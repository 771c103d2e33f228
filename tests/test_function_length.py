"""No function in ``src/`` is over 60 lines (the architecture issue's "smaller rooms" rule):
a longer one is split where it does two things, so each part can be read and tested alone."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "overcast"
LIMIT = 60


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def _in_a_fresh_process(root: Path) -> list[str]:
    """``long_functions`` run in its own interpreter: ``ast.parse`` while another thread of the
    test process parses too hits CPython 3.11.7's "AST constructor recursion depth mismatch"."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from test_function_length import long_functions; "
        "from pathlib import Path; print(json.dumps(long_functions(Path(sys.argv[2]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(root)], capture_output=True, text=True, check=True
    )
    found: list[str] = json.loads(done.stdout)
    return found


def test_no_function_is_over_sixty_lines() -> None:
    found = _in_a_fresh_process(SOURCE)
    assert not found, "split these functions: " + "; ".join(found)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n")
    assert _in_a_fresh_process(tmp_path) == [f"{tmp_path.name}/long.py:1 long ({LIMIT + 1} lines)"]
