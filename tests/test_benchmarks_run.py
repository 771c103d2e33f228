"""The core benchmarks run (in their --quick form) and print a ratio for every row.

They measure nothing here: figures come from full runs, quoted in the README.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RATIO = re.compile(r"\s(\d+\.\d\d)x\s")


@pytest.mark.parametrize(
    "script",
    [
        "kv_sqlite.py",
        "http_serve.py",
        "azure_functions.py",
        "gcp_cloud_run.py",
        "handle_overhead.py",
        "console_overhead.py",
        "replication.py",
        "deferred.py",
    ],
)
def test_ratio_benchmark_reports_every_row(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if RATIO.search(line)]
    assert rows, done.stdout
    assert all(float(RATIO.search(row).group(1)) > 0 for row in rows)  # type: ignore[union-attr]


def test_import_time_benchmark_reports_the_added_time_and_no_cloud_sdk() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "import_time.py"), "--quick"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"import overcast adds -?\d+\.\d ms", done.stdout), done.stdout
    assert "loaded by import overcast: []" in done.stdout
