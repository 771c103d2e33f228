"""The queue conformance suite on every provider."""

from overcast.testing.conformance import QueueSuite

from .providers import suites

globals().update(suites("queue", QueueSuite))
