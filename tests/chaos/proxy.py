"""A TCP proxy the test controls, between a client and a real server: pass, refuse, blackhole,
delay, and cut (reset every open connection). No fault-injection server installs here
(toxiproxy is a Go binary from GitHub), so this is a hundred lines of asyncio in a thread."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from contextlib import suppress

from servers import free_port

PASS, REFUSE, BLACKHOLE = "pass", "refuse", "blackhole"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer sees a connection reset, not an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on ``port`` and forwards to ``target_port`` on loopback, as ``mode`` says."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode = PASS
        self.delay = 0.0
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    def set(self, mode: str, *, delay: float = 0.0) -> None:
        """Apply to new traffic; REFUSE and BLACKHOLE also cut what is open."""
        self.mode, self.delay = mode, delay
        if mode != PASS:
            self.cut()

    def cut(self) -> None:
        """Reset every open connection now."""

        def reset_all() -> None:
            for writer in list(self._open):
                _reset(writer)
            self._open.clear()

        self._loop.call_soon_threadsafe(reset_all)

    def close(self) -> None:
        self.cut()

        def shutdown() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_later(0.05, self._loop.stop)  # the cancelled tasks end first

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(5)
        self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == REFUSE:
            _reset(writer)
            return
        self._open.add(writer)
        if self.mode == BLACKHOLE:
            with suppress(Exception):
                while await reader.read(65536):
                    pass
            self._open.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            self._open.discard(writer)
            return
        self._open.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for end in (writer, up_writer):
            self._open.discard(end)
            end.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.mode == BLACKHOLE:
                    continue  # swallowed: the peer waits for an answer that never comes
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
