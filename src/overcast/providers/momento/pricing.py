"""Momento prices and unit rules: a serverless cache billed per GB transferred.

Every ``get`` and ``set`` moves the value (``cache.py`` sends one request each); the
cache runs in AWS and Google Cloud regions, so it is offered on both.
"""

from __future__ import annotations

from pathlib import Path

from ...cost.model import GB, Call, Offer, Pricing, price_file, unit_pricer

__all__ = ["PRICING"]

_PRICES = price_file(Path(__file__).parent, "prices-momento.json")

RULES = {
    "get": lambda size: [Call("Get", {"gb": size / GB})],
    "set": lambda size: [Call("Set", {"gb": size / GB})],
    "delete": lambda size: [Call("Delete")],
    "incr": lambda size: [Call("Increment", {"gb": 8 / GB})],
}

PRICING = Pricing(
    family="momento",
    offers=[
        Offer("cache", "momento", "Momento Cache", cloud, RULES, unit_pricer(RULES, {"gb": "momento.transfer"}))
        for cloud in ("aws", "gcp")
    ],
    # one price list for every region Momento runs in: the region of the host cloud is not asked
    prices=lambda cloud, region: _PRICES(cloud, None),
)
