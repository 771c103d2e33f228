"""Hybrid logical clocks: versions that order writes across processes and providers.

A clock value is a string that sorts as the clock does: 13 hex digits of wall time in
milliseconds, 6 of a logical counter, then ``-`` and the writer's origin. Comparing two
values as strings compares (wall, counter, origin), which is the last-writer-wins order
replicas converge on. The wall part follows the local clock but never goes back, and
never falls behind a clock value the process has seen (Kulkarni et al., 2014).
"""

from __future__ import annotations

import os
import re
import threading
import time

__all__ = ["HybridClock", "is_clock", "wall_ms"]

_FORM = re.compile(r"^[0-9a-f]{13}[0-9a-f]{6}-[A-Za-z0-9_.]{1,32}$")
_MAX_LOGICAL = 0xFFFFFF


def is_clock(value: object) -> bool:
    """Whether ``value`` is a clock value this module makes."""
    return isinstance(value, str) and _FORM.match(value) is not None


def wall_ms(value: str) -> int:
    """The wall time (milliseconds since the epoch) of a clock value."""
    return int(value[:13], 16)


class HybridClock:
    """A hybrid logical clock for one writer (``origin``); thread-safe."""

    def __init__(self, origin: str | None = None) -> None:
        self.origin = origin or os.urandom(5).hex()
        if not re.match(r"^[A-Za-z0-9_.]{1,32}$", self.origin):
            raise ValueError(f"clock origin {self.origin!r} must be 1-32 letters, digits, '_' or '.'")
        self._wall = 0
        self._logical = 0
        self._suffix = "-" + self.origin
        self._lock = threading.Lock()

    def now(self) -> str:
        """A clock value greater than every one this clock has made or seen."""
        physical = time.time_ns() // 1_000_000
        with self._lock:
            if physical > self._wall:
                self._wall = physical
                self._logical = 0
                return f"{physical:013x}000000{self._suffix}"
            self._tick()
            return f"{self._wall:013x}{self._logical:06x}{self._suffix}"

    def observe(self, value: str) -> None:
        """Make every later ``now()`` greater than ``value`` (a clock read from a store)."""
        if not is_clock(value):
            return
        wall, logical = int(value[:13], 16), int(value[13:19], 16)
        with self._lock:
            if (wall, logical) > (self._wall, self._logical):
                self._wall, self._logical = wall, logical

    def _tick(self) -> None:
        if self._logical >= _MAX_LOGICAL:
            self._wall, self._logical = self._wall + 1, 0
        else:
            self._logical += 1
