"""The topic conformance suite on every provider."""

from overcast.testing.conformance import TopicSuite

from .providers import suites

globals().update(suites("topic", TopicSuite))
