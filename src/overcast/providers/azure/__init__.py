"""Azure: Table storage, Blob storage, Storage Queues and Key Vault providers, and the
Azure Functions runtime.

Install with ``pip install 'overcast[azure]'``. ``function_app`` is loaded on first use,
so importing this package costs nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["function_app"]


def __getattr__(name: str) -> Any:
    if name == "function_app":
        from .functions import function_app

        return function_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
