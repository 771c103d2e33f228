"""google-api-core retry policies that report each retry they make as ``overcast.retries``.

A policy's predicate decides, error by error, whether the call is tried again; wrapping
it counts exactly those decisions (the last one too when the deadline then runs out).
Storage's conditional policies (retry only when a generation precondition makes the call
idempotent) keep their condition; only the policy inside is wrapped.
"""

from __future__ import annotations

from typing import Any

from ... import telemetry

__all__ = ["counted"]


def counted(policy: Any, upstream: str) -> Any:
    """``policy`` (a ``Retry``, or Storage's ``ConditionalRetryPolicy``) counting its retries."""
    inner_policy = getattr(policy, "retry_policy", None)
    if inner_policy is not None:  # ConditionalRetryPolicy
        return type(policy)(counted(inner_policy, upstream), policy.conditional_predicate, policy.required_kwargs)
    decide = policy._predicate

    def predicate(exc: Exception) -> bool:
        again = bool(decide(exc))
        if again:
            telemetry.retried(upstream)
        return again

    return policy.with_predicate(predicate)


def count_gapic_retries(client: Any, upstream: str) -> Any:
    """Make the default retry policy of every method of a generated (gapic) client count
    its retries; returns ``client``. The methods' policies are what a call without an
    explicit ``retry`` uses (Firestore's reads and commits, Pub/Sub's publish and acks)."""
    transport = getattr(client, "_transport", None)
    if transport is None:
        transport = getattr(getattr(client, "_client", None), "_transport", None)
    for method in getattr(transport, "_wrapped_methods", {}).values():
        policy = getattr(method, "_retry", None)
        if policy is not None and hasattr(policy, "_predicate") and not getattr(policy, "_overcast_counted", False):
            method._retry = counted(policy, upstream)
            method._retry._overcast_counted = True
    return client
