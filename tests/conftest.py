"""Shared pytest setup: the conformance plugin selects tests by provider capabilities."""

from overcast.testing.conformance.plugin import pytest_collection_modifyitems, pytest_configure

__all__ = ["pytest_collection_modifyitems", "pytest_configure"]
