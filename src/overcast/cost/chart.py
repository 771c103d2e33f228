"""A chart of monthly cost against request volume: one line per cloud, one for the cheapest mix.

matplotlib is imported here only (``pip install 'overcast[cost]'``); the format follows the
file's suffix (``.png`` or ``.svg``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, MissingDependency
from .engine import compare
from .model import Pricing, Workload

__all__ = ["Series", "chart", "series", "volumes_around"]

Series = dict[str, list[tuple[float, float]]]


def volumes_around(requests: float, points: int = 9) -> list[float]:
    """Request volumes from a tenth to ten times ``requests``, evenly on a log scale."""
    return [requests * 10 ** (-1 + 2 * i / (points - 1)) for i in range(points)]


def series(
    workload: Workload,
    volumes: Sequence[float],
    *,
    free_tier: bool = True,
    all_pricings: Sequence[Pricing] | None = None,
) -> Series:
    """Each cloud's total and the cheapest mix's at each volume: ``{"aws": [(requests, $), ...], "mix": ...}``."""
    lines: Series = {}
    for volume in volumes:
        if volume <= 0:
            raise InvalidArgument(f"chart: request volumes must be above 0, got {volume!r}")
        result = compare(replace(workload, requests=volume), free_tier=free_tier, all_pricings=all_pricings)
        for plan in result.clouds:
            if not plan.missing:
                lines.setdefault(plan.cloud, []).append((volume, plan.total))
        if result.mix is not None:
            lines.setdefault("cheapest mix", []).append((volume, result.mix.total))
    return lines


def chart(lines: Series, path: Path, *, title: str) -> Path:
    """Draw ``lines`` into ``path`` (PNG or SVG, by its suffix)."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidArgument(f"chart {path}: the file must end in .png or .svg")
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: draw to a file
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependency(f"a cost chart needs matplotlib; run: pip install 'overcast[cost]' ({exc})") from exc
    # text stays text in an SVG (readable, searchable), and element ids do not vary run to run
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "overcast"}):
        _draw(plt, lines, path, title)
    return path


def _draw(plt: Any, lines: Series, path: Path, title: str) -> None:
    figure, axes = plt.subplots(figsize=(8, 5))
    try:
        for name, points in lines.items():
            style = {"linewidth": 3, "linestyle": "--"} if name == "cheapest mix" else {"linewidth": 1.5}
            axes.plot([v for v, _ in points], [c for _, c in points], marker="o", label=name, **style)
        axes.set_xscale("log")
        axes.set_xlabel("requests a month")
        axes.set_ylabel("US dollars a month")
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.savefig(path, format=path.suffix.lower().lstrip("."), metadata=_metadata(path))
    finally:
        plt.close(figure)


def _metadata(path: Path) -> dict[str, str | None]:
    """No creation date or tool version in the file, so the same chart is the same bytes."""
    return {"Date": None} if path.suffix.lower() == ".svg" else {"Software": None}
