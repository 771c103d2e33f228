"""Who may post to the Event Grid webhook (``/eventgrid/{name}``).

* ``function`` (or ``admin``) auth level, the default: the Functions host lets only a
  request with the function's key (``?code=`` in the subscription's URL) through.
* ``anonymous`` with ``OVERCAST_EVENTS_TOKEN`` set (an app setting; a Key Vault reference
  keeps it out of the portal): each delivery must carry ``Authorization: Bearer <token>``,
  which the subscription sends as a secret delivery property. The validation handshake
  is answered without it (it proves nothing and triggers nothing).
* ``anonymous`` with ``[targets.NAME.events] verify = "off"`` (``OVERCAST_EVENTS_VERIFY=off``):
  anything is accepted; for a function app reachable only from a private network.
* ``anonymous`` and nothing else: every request is refused (403), handshake included.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...errors import ConfigError
from ...runtime.event_auth import announce, events_settings

if TYPE_CHECKING:
    from ...app import App

__all__ = ["TOKEN_ENV", "WebhookAuth"]

TOKEN_ENV = "OVERCAST_EVENTS_TOKEN"
_MODES = ("", "off", "function-key", "token")


class WebhookAuth:
    """The webhook's check, chosen once at start-up and logged; :meth:`refusal` per request."""

    def __init__(self, app: App, auth_level: str) -> None:
        settings = events_settings(app, {})
        mode = settings.verify
        if mode not in _MODES:
            raise ConfigError(f'{settings.where} verify = {mode!r}: use "function-key" (the default), "token" or "off"')
        self.host_checks = auth_level != "anonymous"
        self.token = os.environ.get(TOKEN_ENV, "")
        self.off = mode == "off"
        if mode == "function-key" and not self.host_checks:
            raise ConfigError(f'{settings.where} verify = "function-key" needs webhook_auth_level="function"')
        if mode == "token" and not self.token:
            raise ConfigError(f'{settings.where} verify = "token" needs the app setting {TOKEN_ENV}')
        if self.off or self.host_checks:
            self.token = ""  # the host's key (or nothing) decides; a token is not asked for as well
        announce(logging.getLogger("overcast.azure.functions"), *self.describe(app.name))

    def describe(self, name: str) -> tuple[int, str]:
        """The start-up log line (level, text)."""
        where = f"{name}: Event Grid webhook /eventgrid/"
        if self.host_checks and not self.off:
            return logging.INFO, f"{where} takes requests with the function key (the Functions host checks it)"
        if self.off:
            return logging.WARNING, (
                f"events.verify = off: {where} accepts deliveries without verifying who sent them; "
                "keep the function app private"
            )
        if self.token:
            return logging.INFO, f"{where} takes deliveries carrying Authorization: Bearer ${TOKEN_ENV}"
        return logging.ERROR, f"{where} refuses every delivery (403): {_NOTHING}"

    @property
    def refuses_all(self) -> bool:
        return not (self.host_checks or self.off or self.token)

    def refusal(self, headers: Mapping[str, str], *, handshake: bool = False) -> tuple[int, str] | None:
        """(status, reason) when the request may not pass, None when it may; ``headers`` in lower case."""
        if self.refuses_all:
            return 403, f"delivery refused: {_NOTHING}"
        if not self.token or handshake:
            return None
        scheme, _, given = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, "delivery refused: no Authorization: Bearer token (set it as a secret delivery property)"
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return 401, "delivery refused: the bearer token is not this app's"
        return None


_NOTHING = (
    'the webhook is anonymous and verifies nothing. Use webhook_auth_level="function" (the default; '
    f"the subscription URL carries ?code=), or set {TOKEN_ENV} and send it as a secret "
    'Authorization delivery property, or set [targets.NAME.events] verify = "off" '
    "(OVERCAST_EVENTS_VERIFY=off) for a private function app"
)
