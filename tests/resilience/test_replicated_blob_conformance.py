"""The blob conformance suite, unchanged, on replicated buckets over pairs of real providers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from overcast.resilience.replicated_blob import ReplicatedBlobStore
from overcast.resources.registry import resolve
from overcast.testing.conformance import BlobStoreSuite
from resilience.pairs import BUCKETS, replicated_url

#: (primary, replica) pairs
PAIRS = [("memory", "file"), ("s3", "gs")]


def _suite(pair: tuple[str, str], ack: str) -> type[Any]:
    common = frozenset.intersection(
        *(frozenset(resolve("bucket", scheme, resource="conformance").capabilities) for scheme in pair)
    )
    capabilities = (common - {"url"}) | ({"signed_get"} if "url" in common else frozenset())

    def make_url(self: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
        for scheme in pair:
            server = BUCKETS[scheme][0]
            if server is not None:
                request.getfixturevalue(server)

        def url() -> str:
            import uuid

            name = f"b{uuid.uuid4().hex[:10]}"
            members = [BUCKETS[scheme][1](tmp_path, f"{name}-{i}") for i, scheme in enumerate(pair)]
            return replicated_url(members[0], members[1:], ack=ack, timeout="10s")

        return url

    body = {"provider": ReplicatedBlobStore, "capabilities": capabilities, "make_url": pytest.fixture(make_url)}
    return type("Suite", (BlobStoreSuite,), body)


for _pair in PAIRS:
    _stem = f"TestReplicatedBucket{_pair[0].capitalize()}{_pair[1].capitalize()}"
    globals()[f"{_stem}AckPrimary"] = type(f"{_stem}AckPrimary", (_suite(_pair, "primary"),), {})
globals()["TestReplicatedBucketMemoryFileAckAll"] = type(
    "TestReplicatedBucketMemoryFileAckAll", (_suite(("memory", "file"), "all"),), {}
)
