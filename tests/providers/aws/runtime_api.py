"""A Lambda Runtime API test server: what Lambda's service side says to a runtime client.

No Lambda runs here, so the tests serve the Runtime API themselves (the 2018-06-01 wire
protocol: ``GET /runtime/invocation/next``, ``POST .../{id}/response`` and ``.../error``,
``POST /runtime/init/error``) and let AWS's real runtime client, ``awslambdaric``, poll it
and run the handler in its own process, as it does on Lambda.

    with RuntimeAPITestServer() as api:
        proc = subprocess.Popen([python, "-m", "awslambdaric", "lambda_function.handler"],
                                env={..., "AWS_LAMBDA_RUNTIME_API": api.address})
        outcome = api.invoke({"version": "2.0", ...})
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    """What the runtime posted back for one invocation: ``response`` or ``error``."""

    kind: str
    payload: Any
    request_id: str


class RuntimeAPITestServer:
    """Queue invocations with :meth:`invoke`; the runtime client takes them one at a time."""

    def __init__(self, *, function_name: str = "users-demo", timeout_ms: int = 30_000) -> None:
        self.function_name = function_name
        self.timeout_ms = timeout_ms
        self._pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._outcomes: dict[str, queue.Queue[Outcome]] = {}
        self.init_error: Any = None
        self.polls = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> RuntimeAPITestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, *, timeout: float = 60.0) -> Outcome:
        """Hand ``event`` to the runtime and wait for what it posts back."""
        request_id = str(uuid.uuid4())
        box: queue.Queue[Outcome] = queue.Queue()
        self._outcomes[request_id] = box
        self._pending.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        while True:
            try:
                return box.get(timeout=0.2)
            except queue.Empty:
                if self.init_error is not None:
                    raise RuntimeError(f"the runtime failed to start: {self.init_error}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer to invocation {request_id} in {timeout}s") from None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    return json.loads(raw) if raw else None
                except ValueError:
                    return raw.decode(errors="replace")

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404, b'{"errorMessage": "unknown path"}')
                    return
                api.polls += 1
                request_id, body = api._pending.get()
                deadline = int(time.time() * 1000) + api.timeout_ms
                arn = f"arn:aws:lambda:us-east-1:123456789012:function:{api.function_name}"
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": arn,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                payload = self._body()
                if self.path == f"{PREFIX}/init/error":
                    api.init_error = payload
                    self._reply(202)
                    return
                parts = self.path.removeprefix(f"{PREFIX}/invocation/").split("/")
                if len(parts) != 2 or parts[1] not in ("response", "error") or parts[0] not in api._outcomes:
                    self._reply(404, b'{"errorMessage": "unknown invocation"}')
                    return
                api._outcomes.pop(parts[0]).put(Outcome(parts[1], payload, parts[0]))
                self._reply(202)

        return Handler
