"""Cold import of ``overcast`` against an empty interpreter start (``python -c pass``).

Goal: ``import overcast`` adds at most 30 ms. Each sample is a fresh interpreter; the two
commands alternate, and the median of each is reported.

    .venv/bin/python benchmarks/import_time.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import Result, arguments, interleave


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    args = arguments(__doc__ or "")
    rounds = 5 if args.quick else 30
    bare = Result("python -c pass", "ms")
    ours = Result("python -c 'import overcast'", "ms")
    app = Result("import overcast + App + 6 resources", "ms")
    declare = (
        "import overcast; a = overcast.App('x'); a.kv('k'); a.bucket('b'); a.queue('q'); "
        "a.topic('t'); a.cache('c'); a.secret('s')"
    )
    interleave(
        rounds, (bare, lambda: timed("pass")), (ours, lambda: timed("import overcast")), (app, lambda: timed(declare))
    )
    print("\nCold import (median of", rounds, "fresh interpreters each)")
    print(f"{'command':<40} {'median':>9}  {'added':>9}")
    for result in (bare, ours, app):
        print(f"{result.name:<40} {result.median:>6.1f} ms  {result.median - bare.median:>+6.1f} ms")
    added = ours.median - bare.median
    print(f"\nimport overcast adds {added:.1f} ms (goal: at most 30 ms) -> {'met' if added <= 30 else 'NOT met'}")
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, overcast; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'boto3','botocore','google','azure','redis','psycopg','momento','grpc','fastapi','pydantic'}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"cloud SDK / framework modules loaded by import overcast: {heavy}")


if __name__ == "__main__":
    main()
