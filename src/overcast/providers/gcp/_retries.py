"""google-api-core retry policies that report each retry they make as ``overcast.retries``.

A policy's predicate decides, error by error, whether the call is tried again; wrapping
it counts exactly those decisions (the last one too when the deadline then runs out).
Storage's conditional policies (retry only when a generation precondition makes the call
idempotent) keep their condition; only the policy inside is wrapped.
"""

from __future__ import annotations

from typing import Any

from ... import telemetry

__all__ = ["bounded", "counted", "deadline"]

#: Seconds a call may take, retries included (the URL option ``timeout``): Firestore, Cloud
#: Storage and Pub/Sub answer in tens of milliseconds, so 5 s leaves room for a cold channel
#: and quick retries, where the clients' defaults retry for 60 to 600 s.
DEFAULT_TIMEOUT = 5.0


def deadline(location: Any) -> float:
    """The URL option ``timeout`` of ``location``, in seconds (default 5)."""
    return float(location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True))


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` says nothing listens where the client connects (gRPC and requests say
    it in the message only): a server that is not there is not retried."""
    return "connection refused" in str(exc).lower()


def bounded(policy: Any, seconds: float) -> Any:
    """``policy`` (a ``Retry``, or Storage's ``ConditionalRetryPolicy``) retrying for at most
    ``seconds`` in all, and never a refused connection."""
    inner_policy = getattr(policy, "retry_policy", None)
    if inner_policy is not None:  # ConditionalRetryPolicy
        return type(policy)(bounded(inner_policy, seconds), policy.conditional_predicate, policy.required_kwargs)
    decide = policy._predicate
    return policy.with_timeout(seconds).with_predicate(lambda exc: bool(decide(exc)) and not _refused(exc))


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


def count_gapic_retries(client: Any, upstream: str, seconds: float | None = None) -> Any:
    """Make the default retry policy of every method of a generated (gapic) client count
    its retries, and with ``seconds`` end each call (retries included) within them; returns
    ``client``. The methods' policies are what a call without an explicit ``retry`` or
    ``timeout`` uses (Firestore's reads and commits, Pub/Sub's publish and acks)."""
    transport = getattr(client, "_transport", None)
    if transport is None:
        transport = getattr(getattr(client, "_client", None), "_transport", None)
    for method in getattr(transport, "_wrapped_methods", {}).values():
        policy = getattr(method, "_retry", None)
        if policy is not None and hasattr(policy, "_predicate") and not getattr(policy, "_overcast_counted", False):
            method._retry = counted(policy if seconds is None else bounded(policy, seconds), upstream)
            method._retry._overcast_counted = True
        if seconds is not None:
            method._timeout = seconds  # each attempt's own deadline
    return client
