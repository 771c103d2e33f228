"""A fake DynamoDB endpoint, named as such: it speaks DynamoDB's JSON protocol to the real
botocore client (and to Overcast's own lite client) but answers only what moto cannot be made
to answer — throttling, batches that leave keys or items unprocessed the first time, and a
script of failures (error answers, bad checksums, dropped connections) before it answers
GetItem / PutItem normally."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeDynamoDB:
    """Serves on 127.0.0.1; ``calls`` records ``(operation, request)``."""

    def __init__(
        self,
        *,
        throttle: bool = False,
        unprocessed_first: bool = False,
        script: list[tuple[int, Any, dict[str, str]]] | None = None,
        tls: tuple[str, str] | None = None,
        keep_alive: bool = False,
    ) -> None:
        """``script``: the first answers, one per request, as ``(status, body, headers)`` — a dict
        body is sent as JSON, bytes as they are; status 0 closes the connection unanswered.
        ``tls``: a certificate and key file to serve HTTPS with. ``keep_alive``: HTTP/1.1, so
        a connection serves several requests; script status -1 answers normally and then
        closes the connection without saying so (as a server dropping an idle one does)."""
        self.throttle = throttle
        self.script = list(script or [])
        self.unprocessed_first = unprocessed_first
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.peers: list[tuple[str, int]] = []  # the client address of each request
        self.items: dict[str, dict[str, Any]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                operation = self.headers["X-Amz-Target"].split(".")[-1]
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls.append((operation, request))
                fake.peers.append(self.client_address)
                headers: dict[str, str] = {}
                drop_after = False
                if fake.script:
                    status, body, headers = fake.script.pop(0)
                    if status == 0:
                        self.close_connection = True
                        return
                    if status == -1:
                        drop_after = True
                        status, body = fake.answer(operation, request)
                else:
                    status, body = fake.answer(operation, request)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                if drop_after:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:  # (certificate file, key file): serve HTTPS
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)

    def answer(self, operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.throttle:
            return 400, {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded.",
            }
        first = self.count(operation) == 1 and self.unprocessed_first
        if operation == "GetItem":
            item = self.items.get(request["Key"]["sk"]["S"])
            return 200, {} if item is None else {"Item": item}
        if operation == "PutItem":
            self.items[request["Item"]["sk"]["S"]] = request["Item"]
            return 200, {}
        if operation == "BatchWriteItem":
            ((table, writes),) = request["RequestItems"].items()
            done, left = (writes[:1], writes[1:]) if first else (writes, [])
            for write in done:
                item = write["PutRequest"]["Item"]
                self.items[item["sk"]["S"]] = item
            return 200, {"UnprocessedItems": {table: left} if left else {}}
        if operation == "BatchGetItem":
            ((table, spec),) = request["RequestItems"].items()
            keys = spec["Keys"]
            done, left = (keys[:1], keys[1:]) if first else (keys, [])
            found = [self.items[k["sk"]["S"]] for k in done if k["sk"]["S"] in self.items]
            unprocessed = {table: {**spec, "Keys": left}} if left else {}
            return 200, {"Responses": {table: found}, "UnprocessedKeys": unprocessed}
        return 400, {"__type": "com.amazon.coral.validate#ValidationException", "message": f"fake: no {operation}"}
