"""``overcast cost --refresh``: current prices from the clouds' public price APIs.

Each family that can refresh names a function in its :class:`~overcast.cost.model.Pricing`
(``refresh``): given a way to fetch a URL and the environment, it reads the price API and
returns its price file with the figures it found replaced (each with the API's address and
the day) and says which it could not find, whose shipped figure stays. The result is written
to the prices folder (``OVERCAST_PRICES_DIR``, else ``~/.cache/overcast/prices``), which the
price tables read before the files shipped in each family's folder. Nothing else in Overcast
reaches the network, and tests pass their own ``fetch``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import Unavailable

__all__ = ["Fetch", "Refreshed", "fetch_url", "prices_dir", "refresh_all", "replace_rate", "shipped", "today"]

#: GET a URL and return the body (tests pass their own).
Fetch = Callable[[str], bytes]


@dataclass
class Refreshed:
    """A family's refreshed price file, what changed and what could not be found."""

    family: str
    name: str
    data: dict[str, Any] | None
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: str | None = None
    path: Path | None = None


def prices_dir() -> Path:
    """Where refreshed price files go, and are read from first."""
    return Path(os.environ.get("OVERCAST_PRICES_DIR") or Path.home() / ".cache" / "overcast" / "prices")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def shipped(folder: Path, name: str) -> dict[str, Any]:
    """A family's price file as shipped in its folder."""
    data: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return data


def replace_rate(entry: dict[str, Any], price_per_unit: float, source: str, date: str) -> bool:
    """Put the API's price per unit into ``entry`` (whose rate is per ``per`` units); whether it changed."""
    rate = round(price_per_unit * float(entry.get("per", 1)), 12)
    changed = bool(rate != entry["rate"])
    entry.update(rate=rate, source=source, note=f"refreshed from the price API on {date}")
    entry.pop("confirmed", None)  # read from the API itself
    return changed


def fetch_url(url: str) -> bytes:
    """The body at ``url`` (the one place Overcast reads a price API)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body: bytes = response.read()
    except OSError as exc:
        raise Unavailable(f"could not read {url.split('?')[0]}: {exc}") from exc
    return body


def refresh_all(
    refreshers: Sequence[Callable[[Fetch, Mapping[str, str]], Refreshed]],
    fetch: Fetch | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Refreshed]:
    """Run each family's refresh (reading with ``fetch``, :func:`fetch_url` by default) and
    write what it found to :func:`prices_dir`."""
    fetch = fetch or fetch_url
    folder = prices_dir()
    done: list[Refreshed] = []
    for refresh in refreshers:
        result = refresh(fetch, os.environ if env is None else env)
        if result.data is not None:
            result.data["retrieved"] = today()
            folder.mkdir(parents=True, exist_ok=True)
            result.path = folder / result.name
            result.path.write_text(json.dumps(result.data, indent=2) + "\n", encoding="utf-8")
        done.append(result)
    return done
