"""The chart of monthly cost against request volume: what it plots, and the files it writes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_cost_cli import _project, runner

from overcast.cli import cli
from overcast.cost import compare, workload_from
from overcast.cost.chart import chart, series, volumes_around
from overcast.errors import InvalidArgument

PROFILE = {"workload": {"requests": 1e6}, "resources": {"users": {"get": 2, "put": 0.3, "stored_gb": 40}}}


def test_each_point_is_the_comparison_at_that_volume() -> None:
    workload = workload_from(PROFILE, {"users": "kv"})
    volumes = volumes_around(workload.requests, points=5)
    assert volumes[0] == pytest.approx(1e5) and volumes[-1] == pytest.approx(1e7)
    lines = series(workload, volumes)
    assert set(lines) == {"aws", "gcp", "azure", "cheapest mix"}
    at_ten_million = compare(workload_from({**PROFILE, "workload": {"requests": 1e7}}, {"users": "kv"}))
    assert lines["aws"][-1] == pytest.approx((1e7, next(p.total for p in at_ten_million.clouds if p.cloud == "aws")))
    assert lines["cheapest mix"][-1][1] == pytest.approx(at_ten_million.mix.total)  # type: ignore[union-attr]
    for points in lines.values():  # more requests never cost less
        costs = [cost for _, cost in points]
        assert costs == sorted(costs)
    for i in range(len(volumes)):  # the mix is never dearer than a single cloud
        assert lines["cheapest mix"][i][1] <= min(lines[c][i][1] for c in ("aws", "gcp", "azure")) + 1e-9


def test_svg_and_png_files(tmp_path: Path) -> None:
    lines = series(workload_from(PROFILE, {"users": "kv"}), volumes_around(1e6, points=3))
    svg = chart(lines, tmp_path / "cost.svg", title="users")
    texts = "".join(ET.parse(svg).getroot().itertext())
    for name in ("aws", "gcp", "azure", "cheapest mix", "requests a month"):
        assert name in texts
    png = chart(lines, tmp_path / "cost.png", title="users")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = chart(lines, tmp_path / "again.svg", title="users")
    assert again.read_bytes() == svg.read_bytes()  # no date in the file: the same chart is the same bytes
    with pytest.raises(InvalidArgument, match=r"\.png or \.svg"):
        chart(lines, tmp_path / "cost.pdf", title="users")


def test_the_command_draws_the_chart(tmp_path: Path) -> None:
    app = _project(tmp_path / "app")
    out = tmp_path / "chart.svg"
    result = runner.invoke(cli, ["cost", str(app), "--requests", "200000", "--chart", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "chart written to" in result.stderr


def test_the_docs_chart_is_what_the_command_draws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/cost-users.svg is the chart the command in docs/cost.md draws from the users
    example's profile, byte for byte (rerun that command after a price or engine change)."""
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "cost.md").read_text(encoding="utf-8")
    assert "--chart docs/cost-users.svg" in page and "](cost-users.svg)" in page
    monkeypatch.setenv("OVERCAST_PRICES_DIR", str(tmp_path / "none"))  # the shipped prices
    monkeypatch.chdir(root)
    drawn = tmp_path / "cost-users.svg"
    args = ["cost", "examples/users", "--profile", "examples/users/cost-profile.toml", "--chart", str(drawn)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert drawn.read_bytes() == (root / "docs" / "cost-users.svg").read_bytes()
