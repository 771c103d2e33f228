"""The azure providers under the conformance suites (see ..providers.Case)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..providers import Case

CASES: list[Case] = []
