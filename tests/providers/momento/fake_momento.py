"""A FAKE Momento cache service: Momento's gRPC API (``momento-wire-types``) served in-process.

No Momento server can run here, so this fake answers the real ``momento`` SDK, which
reaches it through ``CredentialProvider.for_momento_local(host, port)`` (plain-text gRPC).
It implements the control calls (CreateCache, DeleteCache, ListCaches, FlushCache) and
the scalar data calls (Get, Set, SetIfNotExists, Delete, KeysExist, Increment), with the
behaviour we understand Momento to have: a call on an unknown cache is NOT_FOUND;
Increment adds to a value holding a base-10 integer (absent counts as 0) and answers
FAILED_PRECONDITION otherwise; every item has a TTL (expired items are misses).

It proves that the provider speaks the wire protocol the SDK speaks and maps its
answers; it does NOT prove Momento's semantics, which only the real service has (the
cache semantics themselves are proven by the conformance suite on Redis). Two points
are our reading of Momento's documentation, not observed behaviour: Increment keeps an
existing item's expiry and gives a new one the request's TTL, and gRPC statuses map to
``MomentoErrorCode`` as the SDK's error converter does.

``fail_next(code, n)`` makes the next ``n`` data calls fail with a gRPC status, to test
error mapping. ``api_key`` (if set) is required in the ``authorization`` header.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from momento_wire_types import cacheclient_pb2 as pb
from momento_wire_types import cacheclient_pb2_grpc as pb_grpc
from momento_wire_types import controlclient_pb2 as ctrl
from momento_wire_types import controlclient_pb2_grpc as ctrl_grpc

__all__ = ["FakeMomento", "start_fake_momento"]

_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class _Cache:
    items: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)  # key -> (value, expires at)

    def live(self, key: bytes, now: float) -> bytes | None:
        found = self.items.get(key)
        if found is None:
            return None
        if found[1] <= now:
            del self.items[key]
            return None
        return found[0]


class FakeMomento:
    """The fake service's state, and the two servicers over it."""

    def __init__(self, *, api_key: str = "", max_ttl_seconds: int = 24 * 3600) -> None:
        self.api_key = api_key
        self.max_ttl_seconds = max_ttl_seconds
        self.caches: dict[str, _Cache] = {}
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self._failures: list[grpc.StatusCode] = []
        self.server: grpc.Server | None = None
        self.port = 0

    # -- test controls ---------------------------------------------------------------

    def fail_next(self, code: grpc.StatusCode, times: int = 1) -> None:
        with self.lock:
            self._failures.extend([code] * times)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=None)

    # -- shared checks ---------------------------------------------------------------

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if not self.api_key:
            return
        headers = dict(context.invocation_metadata())
        if headers.get("authorization") != self.api_key:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "Invalid signature")

    def _data(self, name: str, context: grpc.ServicerContext) -> tuple[_Cache, float]:
        """The cache named by the ``cache`` header (call under ``self.lock``)."""
        self._authorize(context)
        self.calls.append(name)
        if self._failures:
            context.abort(self._failures.pop(0), f"fake: injected failure of {name}")
        cache_name = dict(context.invocation_metadata()).get("cache")
        if not cache_name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cache header is required")
        cache = self.caches.get(str(cache_name))
        if cache is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Cache not found: {cache_name}")
        assert cache is not None
        return cache, time.monotonic()

    def _expiry(self, ttl_ms: int, now: float, context: grpc.ServicerContext) -> float:
        if ttl_ms <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ttl_milliseconds must be positive")
        if ttl_ms > self.max_ttl_seconds * 1000:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"TTL exceeds the limit of {self.max_ttl_seconds} s")
        return now + ttl_ms / 1000


class _Data(pb_grpc.ScsServicer):  # type: ignore[misc]
    def __init__(self, fake: FakeMomento) -> None:
        self.fake = fake

    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            cache, now = self.fake._data("Get", context)
            value = cache.live(request.cache_key, now)
        if value is None:
            return pb._GetResponse(result=pb.Miss)
        return pb._GetResponse(result=pb.Hit, cache_body=value)

    def Set(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            cache, now = self.fake._data("Set", context)
            expires = self.fake._expiry(request.ttl_milliseconds, now, context)
            cache.items[request.cache_key] = (request.cache_body, expires)
        return pb._SetResponse(result=pb.Ok)

    def SetIfNotExists(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            cache, now = self.fake._data("SetIfNotExists", context)
            expires = self.fake._expiry(request.ttl_milliseconds, now, context)
            if cache.live(request.cache_key, now) is not None:
                return pb._SetIfNotExistsResponse(not_stored=pb._SetIfNotExistsResponse._NotStored())
            cache.items[request.cache_key] = (request.cache_body, expires)
        return pb._SetIfNotExistsResponse(stored=pb._SetIfNotExistsResponse._Stored())

    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            cache, _ = self.fake._data("Delete", context)
            cache.items.pop(request.cache_key, None)
        return pb._DeleteResponse()

    def KeysExist(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            cache, now = self.fake._data("KeysExist", context)
            exists = [cache.live(key, now) is not None for key in request.cache_keys]
        return pb._KeysExistResponse(exists=exists)

    def Increment(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            cache, now = self.fake._data("Increment", context)
            expires = self.fake._expiry(request.ttl_milliseconds, now, context)
            current = cache.live(request.cache_key, now)
            if current is None:
                value = request.amount
            else:
                try:
                    value = int(current.decode("ascii")) + request.amount
                except (UnicodeDecodeError, ValueError):
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Value is not a base-10 integer")
                expires = cache.items[request.cache_key][1]
            if not _INT64[0] <= value <= _INT64[1]:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Increment would overflow a 64-bit integer")
            cache.items[request.cache_key] = (str(value).encode(), expires)
        return pb._IncrementResponse(value=value)


class _Control(ctrl_grpc.ScsControlServicer):  # type: ignore[misc]
    def __init__(self, fake: FakeMomento) -> None:
        self.fake = fake

    def _named(self, request: Any, context: grpc.ServicerContext, call: str) -> str:
        self.fake._authorize(context)
        self.fake.calls.append(call)
        if not request.cache_name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cache_name is required")
        return str(request.cache_name)

    def CreateCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            name = self._named(request, context, "CreateCache")
            if name in self.fake.caches:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Cache already exists: {name}")
            self.fake.caches[name] = _Cache()
        return ctrl._CreateCacheResponse()

    def DeleteCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            name = self._named(request, context, "DeleteCache")
            if self.fake.caches.pop(name, None) is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Cache not found: {name}")
        return ctrl._DeleteCacheResponse()

    def FlushCache(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            name = self._named(request, context, "FlushCache")
            if name not in self.fake.caches:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Cache not found: {name}")
            self.fake.caches[name] = _Cache()
        return ctrl._FlushCacheResponse()

    def ListCaches(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.fake.lock:
            self.fake._authorize(context)
            names = sorted(self.fake.caches)
        limits = ctrl._CacheLimits(max_ttl_seconds=self.fake.max_ttl_seconds, max_item_size_kb=1024)
        return ctrl._ListCachesResponse(cache=[ctrl._Cache(cache_name=n, cache_limits=limits) for n in names])


def start_fake_momento(host: str = "127.0.0.1", *, api_key: str = "", workers: int = 16) -> FakeMomento:
    """Start the fake on a free port in this process (gRPC's own threads); see ``FakeMomento.port``."""
    fake = FakeMomento(api_key=api_key)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fake-momento"),
        options=[
            ("grpc.max_receive_message_length", 8 << 20),
            ("grpc.max_send_message_length", 8 << 20),
            # The SDK pings every 5 s, idle or not, as Momento's servers allow.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
            ("grpc.http2.max_ping_strikes", 0),
        ],
    )
    pb_grpc.add_ScsServicer_to_server(_Data(fake), server)
    ctrl_grpc.add_ScsControlServicer_to_server(_Control(fake), server)
    fake.port = server.add_insecure_port(f"{host}:0")
    server.start()
    fake.server = server
    return fake
