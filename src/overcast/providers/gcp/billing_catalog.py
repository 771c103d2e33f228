"""Current Google Cloud prices from the Cloud Billing Catalog API, which needs an API key.

The key comes from the environment (``GOOGLE_BILLING_API_KEY``; any key of a project with
the Cloud Billing API enabled); without it the refresh says so and the shipped prices stay.
``GET https://cloudbilling.googleapis.com/v1/services/{service}/skus?key=...`` answers
``skus`` (each with ``skuId``, ``description`` and ``pricingInfo[].pricingExpression``:
``usageUnit``, ``baseUnitConversionFactor`` and ``tieredRates`` of ``startUsageAmount`` and
``unitPrice`` in ``units`` and ``nanos``) and a ``nextPageToken``. A price is the first paid
tier of the SKU a selector names, in the unit the price file uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...cost.refresh import Fetch, Refreshed, replace_rate, shipped, today

__all__ = ["API", "KEY_ENV", "SELECTORS", "first_paid_price", "refresh"]

API = "https://cloudbilling.googleapis.com/v1/services/{service}/skus"
KEY_ENV = "GOOGLE_BILLING_API_KEY"
FILE = "prices-gcp.json"
_MAX_PAGES = 40

#: price key -> (service id, SKU id, units of the catalog's usage unit in one unit of the price file)
SELECTORS: dict[str, tuple[str, str, float]] = {
    "run.cpu": ("152E-C115-5142", "4856-B847-F1EB", 1.0),  # vCPU-second
    "run.memory": ("152E-C115-5142", "02A2-9231-36A6", 1.0),  # GiB-second
    "run.requests": ("152E-C115-5142", "2DA5-55D3-E679", 1.0),  # request
    "firestore.reads": ("EE2C-7FAC-5E08", "F251-5791-CE45", 1.0),  # reads in Iowa (us-central1)
    "firestore.writes": ("EE2C-7FAC-5E08", "63B3-E146-F0E9", 1.0),
    "gcs.storage": ("95FF-2EF5-5EA1", "E5F0-6A5D-7BAD", 1.0),  # Standard storage, US regions
}


def _usd(money: Mapping[str, Any]) -> float:
    return int(money.get("units", 0) or 0) + int(money.get("nanos", 0) or 0) / 1e9


def first_paid_price(sku: Mapping[str, Any]) -> float | None:
    """The USD price per usage unit of the SKU's first paid tier."""
    for info in sku.get("pricingInfo", [])[:1]:
        rates = info.get("pricingExpression", {}).get("tieredRates", [])
        paid = sorted((float(r.get("startUsageAmount", 0)), _usd(r.get("unitPrice", {}))) for r in rates)
        for _, price in paid:
            if price > 0:
                return price
    return None


def _skus(fetch: Fetch, service: str, key: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    token = ""
    for _ in range(_MAX_PAGES):
        url = API.format(service=service) + f"?key={key}" + (f"&pageToken={token}" if token else "")
        page = json.loads(fetch(url))
        found.update({sku["skuId"]: sku for sku in page.get("skus", [])})
        token = page.get("nextPageToken") or ""
        if not token:
            break
    return found


def refresh(fetch: Fetch, env: Mapping[str, str]) -> Refreshed:
    """The Google Cloud price file with every selected figure read from the Billing Catalog."""
    key = env.get(KEY_ENV)
    if not key:
        return Refreshed("gcp", FILE, None, skipped=f"the Cloud Billing Catalog API needs an API key: set {KEY_ENV}")
    data = shipped(Path(__file__).parent, FILE)
    result = Refreshed("gcp", FILE, data)
    catalogs: dict[str, dict[str, dict[str, Any]]] = {}
    date = today()
    for name, entry in data["regions"][data["default_region"]].items():
        selector = SELECTORS.get(name)
        if selector is None:
            result.kept.append(f"{name} (no selector)")
            continue
        service, sku_id, per_unit = selector
        if service not in catalogs:
            catalogs[service] = _skus(fetch, service, key)
        sku = catalogs[service].get(sku_id)
        price = first_paid_price(sku) if sku else None
        if price is None:
            result.kept.append(f"{name} (SKU {sku_id} not found or not priced)")
        elif replace_rate(entry, price * per_unit, f"{API.format(service=service)} (SKU {sku_id})", date):
            result.updated.append(name)
    return result
