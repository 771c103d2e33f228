"""A fake Secret Manager: a gRPC server speaking the real SecretManagerService API.

No Secret Manager emulator exists. This fake serves the methods Overcast's provider
and its tests use (CreateSecret, GetSecret, DeleteSecret, ListSecrets, AddSecretVersion,
AccessSecretVersion) with the request and response messages of google-cloud-secret-manager,
over plain-text gRPC, so the real ``SecretManagerServiceClient`` talks to it unchanged.
Statuses follow the service: NOT_FOUND for a missing secret or version, ALREADY_EXISTS for
a second CreateSecret, INVALID_ARGUMENT for a bad id, FAILED_PRECONDITION for a disabled
version. It is a fake: its behaviour is only as faithful as written here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud.secretmanager_v1 import types
from google.protobuf import timestamp_pb2

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION_NAME = re.compile(r"^(projects/[^/]+/secrets/[^/]+)/versions/([^/]+)$")


@dataclass
class _Secret:
    secret: Any
    versions: list[tuple[bytes, str]] = field(default_factory=list)  # (data, state)


class FakeSecretManager:
    """The server's state and its handlers; ``calls`` counts requests per method."""

    def __init__(self) -> None:
        self.secrets: dict[str, _Secret] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server: grpc.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- methods ------------------------------------------------------------------------

    def CreateSecret(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not _SECRET_ID.match(request.secret_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret id {request.secret_id!r}")
        name = f"{request.parent}/secrets/{request.secret_id}"
        with self.lock:
            if name in self.secrets:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
            secret = types.Secret(request.secret)
            secret.name = name
            secret.create_time = _now()
            self.secrets[name] = _Secret(secret)
            return secret

    def GetSecret(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._secret(request.name, context).secret

    def DeleteSecret(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            if self.secrets.pop(request.name, None) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.name}] not found.")
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()

    def ListSecrets(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            found = [s.secret for name, s in sorted(self.secrets.items()) if name.startswith(request.parent + "/")]
        return types.ListSecretsResponse(secrets=found, total_size=len(found))

    def AddSecretVersion(self, request: Any, context: grpc.ServicerContext) -> Any:
        entry = self._secret(request.parent, context)
        with self.lock:
            entry.versions.append((bytes(request.payload.data), "ENABLED"))
            number = len(entry.versions)
        return types.SecretVersion(
            name=f"{request.parent}/versions/{number}", create_time=_now(), state=types.SecretVersion.State.ENABLED
        )

    def AccessSecretVersion(self, request: Any, context: grpc.ServicerContext) -> Any:
        match = _VERSION_NAME.match(request.name)
        if match is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version name {request.name!r}")
        entry = self._secret(match.group(1), context)
        with self.lock:
            versions = list(entry.versions)
        wanted = match.group(2)
        if wanted == "latest":
            enabled = [i for i, (_, state) in enumerate(versions) if state == "ENABLED"]
            if not enabled:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{match.group(1)}] has no enabled versions.")
            index = enabled[-1]
        else:
            index = int(wanted) - 1 if wanted.isdigit() else -1
            if not 0 <= index < len(versions):
                context.abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{request.name}] not found.")
            if versions[index][1] != "ENABLED":
                state = versions[index][1]
                message = f"Secret Version [{request.name}] is in {state} state."
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)
        data = versions[index][0]
        return types.AccessSecretVersionResponse(
            name=f"{match.group(1)}/versions/{index + 1}",
            payload=types.SecretPayload(data=data, data_crc32c=_crc32c(data)),
        )

    def _secret(self, name: str, context: grpc.ServicerContext) -> _Secret:
        with self.lock:
            entry = self.secrets.get(name)
        if entry is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found or has no versions.")
        return entry

    def disable(self, secret_name: str, version: int) -> None:
        with self.lock:
            entry = self.secrets[secret_name]
            entry.versions[version - 1] = (entry.versions[version - 1][0], "DISABLED")

    # -- serving ------------------------------------------------------------------------

    def _handler(self, method: str) -> grpc.RpcMethodHandler:
        request_type, response_type = _TYPES[method]
        implementation: Callable[[Any, grpc.ServicerContext], Any] = getattr(self, method)

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self.lock:
                self.calls[method] = self.calls.get(method, 0) + 1
            return implementation(request, context)

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=request_type.deserialize,
            response_serializer=response_type.serialize,
        )

    def start(self) -> FakeSecretManager:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {method: self._handler(method) for method in _TYPES}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None)


class _Empty:
    @staticmethod
    def serialize(message: Any) -> bytes:
        return bytes(message.SerializeToString())


_TYPES: dict[str, tuple[Any, Any]] = {
    "CreateSecret": (types.CreateSecretRequest, types.Secret),
    "GetSecret": (types.GetSecretRequest, types.Secret),
    "DeleteSecret": (types.DeleteSecretRequest, _Empty),
    "ListSecrets": (types.ListSecretsRequest, types.ListSecretsResponse),
    "AddSecretVersion": (types.AddSecretVersionRequest, types.SecretVersion),
    "AccessSecretVersion": (types.AccessSecretVersionRequest, types.AccessSecretVersionResponse),
}


def _now() -> Any:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), which Secret Manager sends with every payload."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


_fake: FakeSecretManager | None = None
_fake_lock = threading.Lock()


def running_fake() -> FakeSecretManager:
    """The fake of this test process, started on first use."""
    global _fake
    with _fake_lock:
        if _fake is None:
            _fake = FakeSecretManager().start()
        return _fake
