"""Momento (``momento://CACHE``): a serverless cache reached the same way from every cloud."""
