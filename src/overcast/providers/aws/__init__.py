"""AWS: DynamoDB, S3, SQS, SNS, Secrets Manager and SSM providers, and the Lambda runtime.

Install with ``pip install 'overcast[aws]'``. ``lambda_handler`` is loaded on first use,
so importing this package costs nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["lambda_handler"]


def __getattr__(name: str) -> Any:
    if name == "lambda_handler":
        from .lambda_ import lambda_handler

        return lambda_handler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
