"""Google Cloud: Firestore, Cloud Storage, Pub/Sub and Secret Manager providers, and the
Cloud Run / Cloud Functions runtime.

Importing this package imports no Google library; each provider module imports its client
when it is first opened (through the registry), and ``cloud_run_app`` loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cloud_run import cloud_run_app

__all__ = ["cloud_run_app"]


def __getattr__(name: str) -> Any:
    if name == "cloud_run_app":
        from .cloud_run import cloud_run_app

        return cloud_run_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
