"""The cache conformance suite on every provider."""

from overcast.testing.conformance import CacheSuite

from .providers import suites

globals().update(suites("cache", CacheSuite))
