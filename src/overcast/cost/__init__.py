"""``overcast cost``: what an app costs on each cloud, and the cheapest placement per resource.

The engine is provider-neutral: each provider family declares its prices and unit rules
through ``Family.pricing`` (its own ``pricing.py`` and dated price files), and
:func:`compare` prices a :class:`Workload` on every family found. See ``docs/cost.md``.
"""

from __future__ import annotations

from .engine import CloudPlan, Comparison, Placement, compare, pricings
from .model import Call, LineItem, Offer, Price, PriceTable, Pricing, ResourceUsage, Workload
from .profile import DEFAULT_OPS, OPERATIONS, load_profile, workload_from

__all__ = [
    "DEFAULT_OPS",
    "OPERATIONS",
    "Call",
    "CloudPlan",
    "Comparison",
    "LineItem",
    "Offer",
    "Placement",
    "Price",
    "PriceTable",
    "Pricing",
    "ResourceUsage",
    "Workload",
    "compare",
    "load_profile",
    "pricings",
    "workload_from",
]
