"""The secret-store conformance suite on every provider."""

from overcast.testing.conformance import SecretStoreSuite

from .providers import suites

globals().update(suites("secret", SecretStoreSuite))
