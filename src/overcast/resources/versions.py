"""Item versions for providers that make their own: unique across processes, never repeated.

A random per-process prefix and a counter: cheap (no uuid4 per write), and a forked
child draws a new prefix, so parent and child never hand out the same version.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_version"]

_prefix = os.urandom(8).hex()
_counter = itertools.count(1)


def new_version() -> str:
    return f"{_prefix}-{next(_counter):x}"


def _after_fork_in_child() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
