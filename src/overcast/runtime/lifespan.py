"""The ASGI lifespan, driven for runtimes that have no server to do it (Lambda, Azure
Functions, the dev server's wrapped app).

One implementation of the spec's lifespan protocol (ASGI spec 2.0) for every runtime:

- ``startup()`` sends ``lifespan.startup`` and returns when the app answers
  ``lifespan.startup.complete``. ``lifespan.startup.failed`` raises :class:`LifespanFailure`
  with the app's message, whatever the mode.
- An app that does not speak the protocol — it raises, returns, or sends anything else
  (``http.response.start``) before answering — is *unsupported*: with ``mode="on"`` that
  raises :class:`LifespanFailure`; with ``"auto"`` it is logged at INFO, as uvicorn does
  (a WSGI app or a bare ASGI function is the common case, not an error) and requests go on
  without lifespan state.
- An exception after the app started is logged at ERROR with its traceback.
- ``shutdown()`` sends ``lifespan.shutdown`` and returns as soon as the app answers
  ``lifespan.shutdown.complete`` or ``lifespan.shutdown.failed`` (logged at ERROR with the
  app's message, and raised with ``mode="on"``), or when its coroutine ends; a timeout
  bounds an app that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

__all__ = ["Lifespan", "LifespanFailure"]

log = logging.getLogger("overcast.lifespan")

Mode = Literal["on", "auto"]

_STARTUP_REPLIES = frozenset({"lifespan.startup.complete", "lifespan.startup.failed"})
_SHUTDOWN_REPLIES = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


class LifespanFailure(RuntimeError):
    """The app failed to start (or, with ``mode="on"``, to stop), or has no lifespan where one was required.

    Attributes:
        reason: the app's own message (``lifespan.startup.failed``), else the sentence above.
    """

    def __init__(self, text: str, reason: str | None = None) -> None:
        super().__init__(text)
        self.reason = reason or text


class Lifespan:
    """One app's lifespan: started once, left running while the runtime serves requests.

    Attributes:
        state: the lifespan ``state`` dict the app filled at startup (copied into each
            request's scope), or None when the app has no lifespan.
        supported: False once the app showed it does not speak the protocol.
    """

    def __init__(
        self, asgi: Any, *, mode: Mode = "auto", state: dict[str, Any] | None = None, shutdown_timeout: float = 5.0
    ) -> None:
        if mode not in ("on", "auto"):
            raise ValueError(f"lifespan mode must be 'on' or 'auto', not {mode!r}")
        self.asgi = asgi
        self.mode = mode
        self.shutdown_timeout = shutdown_timeout
        #: a server's own lifespan state (the dev server passes uvicorn's), else a new dict
        self.state: dict[str, Any] | None = {} if state is None else state
        self.supported = True
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def startup(self) -> None:
        """Start the app; raise :class:`LifespanFailure` as the module's docstring says."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._replies.get()
        kind = reply["type"] if reply is not None else None
        if kind == "lifespan.startup.complete":
            self._started = True
            return
        self.supported = False
        await self._reap()
        if kind == "lifespan.startup.failed":
            reason = str(reply.get("message") or "") or "no message"  # type: ignore[union-attr]
            raise LifespanFailure(f"the app failed to start: {reason}", reason)
        self.state = None
        if self.mode == "on":
            raise LifespanFailure(
                'the app does not support the ASGI lifespan, and lifespan="on" requires it '
                f'({self._why(reply)}); pass lifespan="auto" or "off"'
            )

    async def shutdown(self) -> None:
        """Stop the app, if it started; see the module's docstring."""
        task = self._task
        if task is None or not self.supported or task.done():
            await self._reap()
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            reply = await asyncio.wait_for(self._replies.get(), timeout=self.shutdown_timeout)
        except TimeoutError:
            log.error("the app did not answer lifespan.shutdown within %gs", self.shutdown_timeout)
            reply = None
        await self._reap()
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            message = reply.get("message") or "no message"
            log.error("the app failed to shut down: %s", message)
            if self.mode == "on":
                raise LifespanFailure(f"the app failed to shut down: {message}")

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.asgi(scope, self._inbox.get, self._send)
        except Exception as exc:
            if self._started:
                log.error("the app's lifespan raised: %r", exc, exc_info=exc)
            elif self.mode == "auto":
                log.info("ASGI 'lifespan' protocol appears unsupported (%r)", exc)
            else:
                log.error("the app's lifespan raised before it started: %r", exc, exc_info=exc)
            await self._replies.put({"type": "overcast.raised", "error": exc})
        finally:
            await self._replies.put(None)

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if (kind in _STARTUP_REPLIES and not self._started) or (kind in _SHUTDOWN_REPLIES and self._started):
            await self._replies.put(message)
            return
        await self._replies.put({"type": "overcast.unexpected", "message": kind})
        raise LifespanFailure(f"unexpected ASGI message {kind!r} in the lifespan protocol")

    @staticmethod
    def _why(reply: dict[str, Any] | None) -> str:
        if reply is None:
            return "it returned without answering lifespan.startup"
        if reply["type"] == "overcast.unexpected":
            return f"it answered lifespan.startup with {reply['message']!r}"
        return f"it raised {reply['error']!r}"

    async def _reap(self) -> None:
        """Let the app's coroutine end (it normally returns after its last reply); cancel it if not."""
        task = self._task
        if task is None or task.done():
            return
        await asyncio.sleep(0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
