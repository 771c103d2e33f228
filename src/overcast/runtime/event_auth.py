"""Who may deliver events over HTTP: ``[targets.NAME.events]`` and ``OVERCAST_EVENTS_*``.

An HTTP endpoint that takes events (Cloud Run's ``/_overcast/``, Azure's Event Grid
webhook) refuses every delivery it cannot verify. A runtime verifies with what its
platform offers (a Google-signed OIDC token, a function key, a shared token); where
nothing is configured, deliveries are refused until verification is configured or
switched off for a private service with ``verify = "off"``
(``OVERCAST_EVENTS_VERIFY=off``). Each runtime says at start-up which it is.

```toml
[targets.gcp.events]
service_accounts = ["push@my-project.iam.gserviceaccount.com"]
# verify = "off"        # a private service: the platform lets only the invoker in
```
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..resources.url import checked_table

if TYPE_CHECKING:
    from ..app import App

__all__ = ["OFF", "VERIFY_ENV", "EventsSettings", "announce", "events_settings"]

VERIFY_ENV = "OVERCAST_EVENTS_VERIFY"
OFF = "off"


class EventsSettings:
    """The target's ``events`` table, checked against the keys a runtime reads, and the environment."""

    def __init__(self, table: Mapping[str, Any], where: str, known: Mapping[str, type | tuple[type, ...]]) -> None:
        self.table = checked_table(dict(table) if isinstance(table, Mapping) else table, where, known)
        self.where = where

    def text(self, key: str, env: str | None = None) -> str:
        """One setting: the environment variable ``env`` first, then the table (``""`` when unset)."""
        value = os.environ.get(env, "").strip() if env else ""
        if value:
            return value
        raw = self.table.get(key, "")
        return raw.strip() if isinstance(raw, str) else ""

    def names(self, key: str, env: str | None = None) -> list[str]:
        """A list setting: a comma-separated environment variable, or the table's string or list."""
        value = os.environ.get(env, "") if env else ""
        raw: Any = value if value.strip() else self.table.get(key, [])
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        if not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{self.where} {key} must be a string or a list of strings, got {raw!r}")
        return [item.strip() for item in items if item.strip()]

    @property
    def verify(self) -> str:
        """``verify``: ``"off"``, a mode the runtime names, or ``""`` (the runtime's default)."""
        return self.text("verify", VERIFY_ENV).lower()

    @property
    def off(self) -> bool:
        """Whether verification is switched off explicitly (a private service)."""
        return self.verify == OFF


def events_settings(app: App, known: Mapping[str, type | tuple[type, ...]]) -> EventsSettings:
    """``app``'s target's ``events`` table (empty when absent), checked against ``known``."""
    target = app.config.target()
    table = target.options.get("events", {})
    where = f"{target.path or 'overcast.toml'}: [targets.{target.name}.events]"
    return EventsSettings(table, where, {"verify": str, **known})


def announce(logger: logging.Logger, level: int, text: str) -> None:
    """Log how deliveries are checked; where logging is not set up (a bare ``overcast run``, whose
    fallback shows warnings only) an INFO line is written to stderr all the same."""
    logger.log(level, "%s", text)
    if level < logging.WARNING and not logger.hasHandlers():
        print(f"{logger.name}: {text}", file=sys.stderr, flush=True)
