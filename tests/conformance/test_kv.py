"""The key-value conformance suite on every provider."""

from overcast.testing.conformance import KeyValueStoreSuite

from .providers import suites

globals().update(suites("kv", KeyValueStoreSuite))
