"""Test helpers for Overcast providers; imports pytest, so ``import overcast`` never imports this.

``overcast.testing.conformance`` holds one test suite per interface; a provider
(built in or third-party) is done when the suite passes against it.
"""
