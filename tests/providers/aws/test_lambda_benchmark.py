"""benchmarks/aws_lambda.py runs (--quick) and prints a ratio for every row; it measures
nothing here (figures come from full runs, quoted in docs/clouds/aws_lambda.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "aws_lambda.py"
RATIO = re.compile(r"\s(\d+\.\d\d)x\s")


def test_the_lambda_benchmark_reports_every_row() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARK), "--quick"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if RATIO.search(line)]
    assert len(rows) == 6, done.stdout
    assert "cold start" in rows[-2] and "botocore" in rows[-1]
