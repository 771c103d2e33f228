"""Conformance suites: one base test class per interface, run unchanged against every provider.

A provider opts in by subclassing with a ``Test`` name, naming the class under test
and giving a ``make_url`` fixture that returns a factory of fresh resource URLs::

    # conftest.py
    pytest_plugins = ["overcast.testing.conformance.plugin"]

    # test_mykv.py
    from overcast.testing.conformance import KeyValueStoreSuite

    class TestMyKV(KeyValueStoreSuite):
        provider = MyKeyValueStore

        @pytest.fixture
        def make_url(self, tmp_path):
            return lambda: f"mykv://{uuid.uuid4().hex}"

The provider's ``capabilities`` select the tests: those needing a capability it lacks
are deselected (by the plugin), and some are replaced by checks that the operation
raises ``NotSupported``. Async tests run with anyio's pytest plugin.
"""

from .base import ConformanceSuite, lacks, requires
from .blob import BlobStoreSuite
from .cache import CacheSuite
from .kv import KeyValueStoreSuite
from .queue import QueueSuite, TopicSuite
from .secrets import SecretStoreSuite

__all__ = [
    "BlobStoreSuite",
    "CacheSuite",
    "ConformanceSuite",
    "KeyValueStoreSuite",
    "QueueSuite",
    "SecretStoreSuite",
    "TopicSuite",
    "lacks",
    "requires",
]
