"""A circuit breaker per upstream endpoint: stop calling a provider that is down, probe it back.

Only unavailability counts (``Unavailable``, ``Throttled`` and timeouts): a ``NotFound``,
``Conflict`` or ``PermissionDenied`` is the service answering. After ``threshold``
failures in a row the breaker opens and callers go elsewhere at once; after ``cooldown``
seconds it is half-open, and one probe (``ping()``, or the next call) decides whether it
closes again. Breakers are shared by every wrapper reaching the same store (its URL) in the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import Throttled, Unavailable
from ..resources.url import ResourceURL

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "Breaker", "breaker_for", "breakers", "counts_as_down", "endpoint_of"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def counts_as_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the upstream is down (not that it answered no)."""
    return isinstance(exc, (Unavailable, Throttled, TimeoutError))


class Breaker:
    """The state of one endpoint as its callers saw it; thread-safe."""

    def __init__(self, endpoint: str, *, threshold: int = 2, cooldown: float = 1.0) -> None:
        self.endpoint = endpoint
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self.transitions: dict[str, int] = {CLOSED: 0, OPEN: 0, HALF_OPEN: 0}
        self.listeners: list[Callable[[str, str], None]] = []
        self._probing = 0.0  # when the half-open probe started (0: none)
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return CLOSED
        return HALF_OPEN if time.monotonic() - self.opened_at >= self.cooldown else OPEN

    def allows(self) -> bool:
        """Whether a call may go to the endpoint now (half-open: one probe at a time)."""
        with self._lock:
            state = self.state
            if state == CLOSED:
                return True
            now = time.monotonic()
            if state == HALF_OPEN and now - self._probing >= self.cooldown:  # none, or one that never ended
                self._probing = now
                self._changed(HALF_OPEN)
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self._probing = 0.0
            if self.opened_at is not None:
                self.opened_at = None
                self._changed(CLOSED)

    def failed(self, exc: BaseException) -> None:
        """Count ``exc`` if it says the endpoint is down; other errors are answers."""
        if not counts_as_down(exc):
            self.succeeded()
            return
        with self._lock:
            self.failures += 1
            if self._probing or (self.opened_at is None and self.failures >= self.threshold):
                self._probing = 0.0
                self.opened_at = time.monotonic()
                self._changed(OPEN)

    def _changed(self, state: str) -> None:
        self.transitions[state] += 1
        for listener in list(self.listeners):
            listener(self.endpoint, state)


_breakers: dict[str, Breaker] = {}
_lock = threading.Lock()


def endpoint_of(url: ResourceURL) -> str:
    """The member's URL (without credentials): a breaker per store reached.

    Finer than one per service endpoint: stores on one endpoint that goes down each open
    after ``threshold`` failures of their own.
    """
    return str(url)


def breaker_for(url: ResourceURL, *, threshold: int = 2, cooldown: float = 1.0) -> Breaker:
    """The process's breaker for the endpoint behind ``url`` (made on first use)."""
    return breaker_named(endpoint_of(url), threshold=threshold, cooldown=cooldown)


def breakers() -> dict[str, Breaker]:
    """Every breaker of the process, by endpoint or name."""
    with _lock:
        return dict(_breakers)


def breaker_named(key: str, *, threshold: int = 2, cooldown: float = 1.0) -> Breaker:
    """The process's breaker for something that is not one store's URL (a non-critical
    subscription's dependencies, a deferrable function's), made on first use."""
    with _lock:
        found = _breakers.get(key)
        if found is None:
            found = _breakers[key] = Breaker(key, threshold=threshold, cooldown=cooldown)
        return found
