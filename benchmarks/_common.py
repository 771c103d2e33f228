"""Shared by the benchmarks: interleaved rounds, best-of timing, and a table of ratios.

Every benchmark measures Overcast and its baseline in the same run, alternating rounds so
that a slower or busier moment of the machine hits both alike, and reports the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.samples) if self.unit.endswith("s") and "/" not in self.unit else max(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not a measurement")
    return parser.parse_args()


def interleave(rounds: int, *runs: tuple[Result, Callable[[], float]]) -> None:
    """Run each measurement once per round, in turn, recording its figure."""
    for _ in range(rounds):
        for result, run in runs:
            result.samples.append(run())


def report(title: str, rows: list[tuple[str, Result, Result, str]]) -> None:
    """Print ``overcast`` against ``baseline`` for each row, with the ratio and the goal."""
    print(f"\n{title}")
    print(f"{'measure':<34} {'overcast':>14} {'baseline':>14} {'ratio':>7}  goal")
    for label, ours, base, goal in rows:
        ratio = ours.median / base.median if base.median else float("inf")
        ours_text = f"{ours.median:>10.1f} {ours.unit:<3}"
        base_text = f"{base.median:>10.1f} {base.unit:<3}"
        print(f"{label:<34} {ours_text} {base_text} {ratio:>6.2f}x  {goal}")


def per_op_us(n: int, op: Callable[[], Any]) -> Callable[[], float]:
    """A measurement: microseconds per call of ``op`` over ``n`` calls."""

    def run() -> float:
        start = time.perf_counter()
        for _ in range(n):
            op()
        return (time.perf_counter() - start) / n * 1e6

    return run


def per_op_us_async(loop: asyncio.AbstractEventLoop, n: int, op: Callable[[], Awaitable[Any]]) -> Callable[[], float]:
    """The same for a coroutine function, run on ``loop``."""

    async def timed() -> float:
        start = time.perf_counter()
        for _ in range(n):
            await op()
        return (time.perf_counter() - start) / n * 1e6

    return lambda: loop.run_until_complete(timed())
