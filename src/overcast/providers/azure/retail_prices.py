"""Current Azure prices from the Azure Retail Prices API (public, no credentials).

``GET https://prices.azure.com/api/retail/prices?$filter=...`` answers ``Items`` (each with
``serviceName``, ``productName``, ``skuName``, ``meterName``, ``armRegionName``,
``retailPrice``, ``unitOfMeasure`` and ``tierMinimumUnits``) and a ``NextPageLink``. A price
is the first paid tier of the items a selector matches, per unit of measure; when none
matches, or they disagree, the shipped figure stays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...cost.refresh import Fetch, Refreshed, replace_rate, shipped, today

__all__ = ["API", "SELECTORS", "first_paid_price", "refresh", "unit_size"]

API = "https://prices.azure.com/api/retail/prices"
FILE = "prices-azure.json"
_MAX_PAGES = 20

#: price key -> the fields its meter has (serviceName, productName, skuName, meterName)
SELECTORS: dict[str, dict[str, str]] = {
    "functions.executions": {"serviceName": "Functions", "meterName": "Total Executions"},
    "functions.gb_seconds": {"serviceName": "Functions", "meterName": "Execution Time"},
    "blob.storage": {
        "serviceName": "Storage",
        "productName": "General Block Blob v2",
        "skuName": "Hot LRS",
        "meterName": "Hot LRS Data Stored",
    },
    "blob.writes": {
        "serviceName": "Storage",
        "productName": "General Block Blob v2",
        "skuName": "Hot LRS",
        "meterName": "Hot LRS Write Operations",
    },
    "blob.reads": {
        "serviceName": "Storage",
        "productName": "General Block Blob v2",
        "skuName": "Hot LRS",
        "meterName": "Hot Read Operations",
    },
    "blob.lists": {
        "serviceName": "Storage",
        "productName": "General Block Blob v2",
        "skuName": "Hot LRS",
        "meterName": "LRS List and Create Container Operations",
    },
    "keyvault.operations": {"serviceName": "Key Vault", "skuName": "Standard", "meterName": "Operations"},
    "egress.internet": {"serviceName": "Bandwidth", "meterName": "Standard Data Transfer Out"},
}


def unit_size(unit_of_measure: str) -> float:
    """How many units a price is for: ``"10K"`` → 10,000, ``"1M"`` → 1,000,000, ``"1 GB/Month"`` → 1."""
    match = re.match(r"\s*([\d.]+)\s*([KM]?)", unit_of_measure)
    if match is None:
        return 1.0
    return float(match.group(1)) * {"": 1, "K": 1e3, "M": 1e6}[match.group(2)]


def _filter(region: str, wanted: Mapping[str, str]) -> str:
    terms = [f"armRegionName eq '{region}'", "priceType eq 'Consumption'"]
    terms += [f"{field} eq '{value}'" for field, value in wanted.items()]
    return " and ".join(terms)


def first_paid_price(items: Sequence[Mapping[str, Any]], wanted: Mapping[str, str]) -> float | None:
    """The price per single unit of the first paid tier of the matching items (None if none or several)."""
    matching = [i for i in items if all(i.get(k) == v for k, v in wanted.items())]
    paid = sorted(
        (float(i.get("tierMinimumUnits", 0)), float(i["retailPrice"]) / unit_size(str(i.get("unitOfMeasure", "1"))))
        for i in matching
        if float(i["retailPrice"]) > 0
    )
    if not paid:
        return None
    first = [price for tier, price in paid if tier == paid[0][0]]
    return first[0] if len(set(first)) == 1 else None


def _items(fetch: Fetch, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    for _ in range(_MAX_PAGES):
        if not next_url:
            break
        page = json.loads(fetch(next_url))
        items += page.get("Items", [])
        next_url = page.get("NextPageLink")
    return items


def refresh(fetch: Fetch, env: Mapping[str, str]) -> Refreshed:
    """The Azure price file with every selected figure read from the Retail Prices API."""
    data = shipped(Path(__file__).parent, FILE)
    region = data["default_region"]
    result = Refreshed("azure", FILE, data)
    date = today()
    for key, entry in data["regions"][region].items():
        wanted = SELECTORS.get(key)
        if wanted is None:
            result.kept.append(f"{key} (no selector)")
            continue
        url = f"{API}?$filter={quote(_filter(region, wanted))}"
        price = first_paid_price(_items(fetch, url), wanted)
        if price is None:
            result.kept.append(f"{key} (no single match)")
        elif replace_rate(entry, price, url, date):
            result.updated.append(key)
    return result
