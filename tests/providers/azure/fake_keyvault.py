"""A FAKE Azure Key Vault: the secrets REST API over HTTPS, served in-process, for the real SDK.

No Key Vault emulator exists, so this fake answers the real ``azure-keyvault-secrets``
client (``SecretClient``) with what we understand of the service:

- ``GET /secrets/{name}/{version}`` and ``PUT /secrets/{name}`` with ``api-version``,
  answering ``SecretBundle`` JSON (``value``, ``id`` with a version, ``attributes``);
  an unknown name is 404 ``SecretNotFound``;
- the authentication challenge: a request without the expected bearer token is answered
  401 with ``WWW-Authenticate: Bearer authorization="…", resource="https://vault.azure.net"``,
  which the SDK's challenge policy turns into a token request to its credential.

The token comes from the real ``DefaultAzureCredential``, narrowed to its Azure CLI
credential (``AZURE_TOKEN_CREDENTIALS``) and given a fake ``az`` on ``PATH`` that prints a
token. TLS (the SDK refuses bearer tokens over plain HTTP) uses a self-signed certificate
trusted through ``REQUESTS_CA_BUNDLE`` (certifi's roots plus it). It proves the provider
drives the SDK correctly over the wire; Key Vault's own behaviour beyond these calls is
not proven (not yet run against a real vault).
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tls_support import self_signed

__all__ = ["FakeKeyVault", "start_fake_keyvault"]

TOKEN = "fake-keyvault-token-" + uuid.uuid4().hex


@dataclass
class FakeKeyVault:
    """The fake's state: secrets by lowercase name (Key Vault names are case-insensitive)."""

    port: int = 0
    token: str = TOKEN
    secrets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # name -> [(version, value)]
    requests: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, path, authorized)
    env: dict[str, str] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def url(self, *, cache_ttl: float | None = None, secret: str = "") -> str:
        """A ``keyvault://`` URL reaching this fake."""
        query = f"endpoint={self.endpoint}&verify_challenge=false"
        if cache_ttl is not None:
            query += f"&cache_ttl={cache_ttl:g}"
        return f"keyvault://fake/{secret}?{query}" if secret else f"keyvault://fake?{query}"

    def set(self, name: str, value: str) -> str:
        version = uuid.uuid4().hex
        with self.lock:
            self.secrets.setdefault(name.lower(), []).append((version, value))
        return version

    def apply_env(self) -> None:
        os.environ.update(self.env)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _bundle(fake: FakeKeyVault, name: str, version: str, value: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "value": value,
        "id": f"{fake.endpoint}/secrets/{name}/{version}",
        "attributes": {"enabled": True, "created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable"},
        "tags": {},
    }


def _handler(fake: FakeKeyVault) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _reply(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            authorized = self.headers.get("Authorization") == f"Bearer {fake.token}"
            fake.requests.append((method, parts.path, authorized))
            if "api-version=" not in parts.query:
                self._reply(400, {"error": {"code": "MissingApiVersionParameter", "message": "api-version"}})
                return
            if not authorized:
                challenge = (
                    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", '
                    'resource="https://vault.azure.net"'
                )
                self._reply(
                    401, {"error": {"code": "Unauthorized", "message": "AKV10000"}}, {"WWW-Authenticate": challenge}
                )
                return
            segments = [s for s in parts.path.split("/") if s]
            if len(segments) < 2 or segments[0] != "secrets":
                self._reply(404, {"error": {"code": "NotFound", "message": parts.path}})
                return
            name = segments[1]
            version = segments[2] if len(segments) > 2 else ""
            if method == "PUT" and not version:
                value = json.loads(raw or b"{}").get("value")
                if not isinstance(value, str):
                    self._reply(400, {"error": {"code": "BadParameter", "message": "value"}})
                    return
                self._reply(200, _bundle(fake, name, fake.set(name, value), value))
                return
            if method == "GET":
                with fake.lock:
                    versions = list(fake.secrets.get(name.lower(), []))
                found = [v for v in versions if not version or v[0] == version]
                if not found:
                    message = f"A secret with (name/id) {name} was not found in this key vault."
                    self._reply(404, {"error": {"code": "SecretNotFound", "message": message}})
                    return
                ver, value = found[-1]
                self._reply(200, _bundle(fake, name, ver, value))
                return
            self._reply(405, {"error": {"code": "MethodNotAllowed", "message": method}})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_PUT(self) -> None:
            self._handle("PUT")

    return Handler


def _fake_az(folder: Path, token: str) -> Path:
    """A fake Azure CLI: ``az account get-access-token`` prints ``token``, as the real one would."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    script = bin_dir / "az"
    expires = int(time.time()) + 3600
    answer = json.dumps({"accessToken": token, "expires_on": expires, "tokenType": "Bearer"})
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\n", encoding="utf-8")
    script.chmod(0o755)
    return bin_dir


def start_fake_keyvault(*, apply_env: bool = True) -> FakeKeyVault:
    """Start the fake on a free port; with ``apply_env``, set the environment the SDK needs here."""
    import certifi

    folder = Path(tempfile.mkdtemp(prefix="fake-keyvault-"))
    cert_path, key_path = self_signed(folder, "fake-keyvault")
    bundle = folder / "ca-bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text(encoding="utf-8") + cert_path.read_text(), encoding="utf-8")
    fake = FakeKeyVault()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    fake.server = server
    fake.port = server.server_address[1]
    bin_dir = _fake_az(folder, fake.token)
    fake.env = {
        "REQUESTS_CA_BUNDLE": str(bundle),
        "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    threading.Thread(target=server.serve_forever, name="fake-keyvault", daemon=True).start()
    if apply_env:
        fake.apply_env()
    return fake
