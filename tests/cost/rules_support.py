"""Where the unit-rule tests find the rules: through each family's declaration, as the engine does."""

from __future__ import annotations

from overcast.cost.model import Call, Offer, Pricing
from overcast.resources.registry import families, load_attribute


def offer(family: str, kind: str, scheme: str) -> Offer:
    pricing = load_attribute(families()[family].pricing or "")
    assert isinstance(pricing, Pricing)
    return next(o for o in pricing.offers if o.kind == kind and o.scheme == scheme)


def apis(calls: list[Call] | tuple[Call, ...]) -> list[str]:
    return [call.api for call in calls]
