"""``GET /_overcast/health``: served in front of the app's HTTP app on every runtime.

It answers from what the process knows (no call to any service): 200 with
``{"status": "ok"}`` or ``"degraded"`` (a replica is down, the resource still answers),
503 with ``"down"`` when a replicated resource has no member left. Member URLs are not
shown (the endpoint is as public as the app): roles, providers, breaker states and lag.
Backlogs of deferred work (``backlogs``): each one's depth, which is asked of its queue (at
most every 5 s, half a second at most), and the oldest item's age and counts this process knows.
"""

from __future__ import annotations

import json
from typing import Any

from ..resilience.health import backlogs, snapshot

__all__ = ["PATH", "HealthRoute"]

PATH = "/_overcast/health"


class HealthRoute:
    """An ASGI app that answers the health path and passes everything else to ``app``."""

    def __init__(self, app: Any, resources: dict[str, Any]) -> None:
        self.app = app
        self.resources = resources

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != PATH:
            await self.app(scope, receive, send)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await _reply(send, 405, {"error": "use GET"}, allow=True)
            return
        body = snapshot(self.resources)
        waiting = await backlogs(self.resources)
        if waiting:
            body["backlogs"] = waiting
        await _reply(send, 503 if body["status"] == "down" else 200, body, head=scope.get("method") == "HEAD")


async def _reply(send: Any, status: int, body: dict[str, Any], *, allow: bool = False, head: bool = False) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    headers.append((b"content-length", str(len(data)).encode()))
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else data})
