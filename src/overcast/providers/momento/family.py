"""The Momento family: a serverless cache reached the same way from every cloud."""

from __future__ import annotations

from ...resources.registry import Family

FAMILY = Family(
    name="momento",
    extra="momento",
    requires=("momento",),
    schemes={"cache": {"momento": "overcast.providers.momento.cache:MomentoCache"}},
    pricing="overcast.providers.momento.pricing:PRICING",
)
