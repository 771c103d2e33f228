"""Current AWS prices from the AWS Price List bulk API (public, no credentials).

One offer file per service and region (``.../offers/v1.0/aws/{offer}/current/{region}/index.json``):
``products`` (SKU → product family and attributes) and ``terms.OnDemand`` (SKU → price
dimensions with ``beginRange`` and ``pricePerUnit.USD``). A price is the first paid tier of
the SKUs a selector matches; when they disagree, or none matches, the shipped figure stays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...cost.refresh import Fetch, Refreshed, replace_rate, shipped, today

__all__ = ["OFFER_URL", "SELECTORS", "first_paid_price", "refresh"]

OFFER_URL = "https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/{offer}/current/{region}/index.json"
FILE = "prices-aws.json"

#: price key -> (offer code, the product family and attributes its SKUs have)
SELECTORS: dict[str, tuple[str, dict[str, str]]] = {
    "lambda.requests": ("AWSLambda", {"group": "AWS-Lambda-Requests"}),
    "lambda.duration": ("AWSLambda", {"group": "AWS-Lambda-Duration"}),
    "dynamodb.wru": (
        "AmazonDynamoDB",
        {"productFamily": "Amazon DynamoDB PayPerRequest Throughput", "group": "DDB-WriteUnits"},
    ),
    "dynamodb.rru": (
        "AmazonDynamoDB",
        {"productFamily": "Amazon DynamoDB PayPerRequest Throughput", "group": "DDB-ReadUnits"},
    ),
    "dynamodb.storage": (
        "AmazonDynamoDB",
        {"productFamily": "Database Storage", "volumeType": "Amazon DynamoDB - Indexed DataStore"},
    ),
    "s3.storage": (
        "AmazonS3",
        {"productFamily": "Storage", "storageClass": "General Purpose", "volumeType": "Standard"},
    ),
    "s3.tier1": ("AmazonS3", {"group": "S3-API-Tier1"}),
    "s3.tier2": ("AmazonS3", {"group": "S3-API-Tier2"}),
    "sqs.requests": ("AWSQueueService", {"productFamily": "API Request", "queueType": "Standard"}),
}


def _matches(product: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    attributes = product.get("attributes", {})
    return all(
        (product.get("productFamily") if key == "productFamily" else attributes.get(key)) == value
        for key, value in wanted.items()
    )


def first_paid_price(offer: Mapping[str, Any], wanted: Mapping[str, str]) -> float | None:
    """The USD price per unit of the first paid tier of the SKUs matching ``wanted``; None if
    none matches or they disagree."""
    found: set[float] = set()
    on_demand = offer.get("terms", {}).get("OnDemand", {})
    for sku, product in offer.get("products", {}).items():
        if not _matches(product, wanted):
            continue
        tiers = [
            (float(dim.get("beginRange", 0)), float(dim["pricePerUnit"]["USD"]))
            for term in on_demand.get(sku, {}).values()
            for dim in term.get("priceDimensions", {}).values()
        ]
        paid = sorted(t for t in tiers if t[1] > 0)
        if paid:
            found.add(paid[0][1])
    return found.pop() if len(found) == 1 else None


def refresh(fetch: Fetch, env: Mapping[str, str]) -> Refreshed:
    """The AWS price file with every selected figure read from the Price List bulk API."""
    data = shipped(Path(__file__).parent, FILE)
    region = data["default_region"]
    result = Refreshed("aws", FILE, data)
    offers: dict[str, Any] = {}
    date = today()
    for key, entry in data["regions"][region].items():
        selector = SELECTORS.get(key)
        if selector is None:
            result.kept.append(f"{key} (no selector)")
            continue
        code, wanted = selector
        url = OFFER_URL.format(offer=code, region=region)
        if code not in offers:
            offers[code] = json.loads(fetch(url))
        price = first_paid_price(offers[code], wanted)
        if price is None:
            result.kept.append(f"{key} (no single match in {code})")
        elif replace_rate(entry, price, url, date):
            result.updated.append(key)
    return result
