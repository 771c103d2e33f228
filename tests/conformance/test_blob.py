"""The blob conformance suite on every provider."""

from overcast.testing.conformance import BlobStoreSuite

from .providers import suites

globals().update(suites("bucket", BlobStoreSuite))
