"""Wrappers over any provider that survive a provider going down: replication and failover.

A replicated resource (``kv.users = { primary = "dynamodb://users", replicas =
["firestore://users"] }`` in ``overcast.toml``, or the URL form ``replicated://users?...``)
is an ordinary store of its kind built from other stores through the wrapper contract,
so it works over any provider family. See ``docs/resilience.md`` for the guarantees.
"""

from __future__ import annotations

__all__ = ["Breaker", "HybridClock", "breaker_for"]

from .breaker import Breaker, breaker_for
from .clock import HybridClock
