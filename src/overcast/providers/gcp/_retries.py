"""google-api-core retry policies that report each retry they make as ``overcast.retries``.

A policy's predicate decides, error by error, whether the call is tried again; wrapping
it counts exactly those decisions (the last one too when the deadline then runs out).
Storage's conditional policies (retry only when a generation precondition makes the call
idempotent) keep their condition; only the policy inside is wrapped.
"""

from __future__ import annotations

from typing import Any

from ...telemetry import _state as telemetry

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
