"""DESIGN's layer order, checked by import-linter's contracts in pyproject.toml: nothing imports
upward, provider families import no other family, and the core imports no provider."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports() -> subprocess.CompletedProcess[str]:
    program = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert program, "lint-imports is missing: pip install -e '.[test]' installs import-linter"
    return subprocess.run(
        [program, "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_layer_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def test_the_contracts_name_every_top_level_module() -> None:
    """A new top-level module or package must be placed in a layer, or the contract says nothing of it."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = {name.strip() for layer in config[0]["layers"] for name in layer.split("|")}
    package = ROOT / "src" / "overcast"
    found = {
        f"overcast.{path.stem}"
        for path in package.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").is_file()) and not path.name.startswith("__")
    }
    unplaced = found - layers - {"overcast.testing"}  # the public conformance suite stands beside the layers
    assert not unplaced, f"place these in [tool.importlinter] layers: {sorted(unplaced)}"
