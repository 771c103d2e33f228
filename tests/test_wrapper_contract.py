"""The wrapper contract: the outer face validates and encodes once, wrappers forward hook to
hook, and a provider that lacks a hook fails at once. Checked on the real embedded providers
(SQLite, memory), reached through a plain forwarding wrapper and through an App handle."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

import overcast
from overcast.errors import InvalidArgument
from overcast.providers.local.sqlite_kv import SQLiteKeyValueStore
from overcast.providers.local.sqlite_queue import SQLiteQueue
from overcast.resources.blob import BlobStore
from overcast.resources.cache import Cache
from overcast.resources.forwarding import ForwardingKeyValueStore, ForwardingQueue
from overcast.resources.kv import KeyValueStore, KVLimits
from overcast.resources.queue import Queue, Topic
from overcast.resources.secrets import SecretStore


class RecordingSQLiteKV(SQLiteKeyValueStore):
    """The real SQLite store, noting what reaches its put hooks."""

    limits = KVLimits(max_value_bytes=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.puts: list[tuple[bytes, datetime | None]] = []

    def _put_blocking(self, key: str, value: dict[str, Any], data: bytes, *rest: Any) -> str:
        self.puts.append((data, rest[-1]))
        return super()._put_blocking(key, value, data, *rest)

    async def _put(self, key: str, value: dict[str, Any], data: bytes, *rest: Any) -> str:
        self.puts.append((data, rest[-1]))
        return await super()._put(key, value, data, *rest)


class RecordingSQLiteQueue(SQLiteQueue):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[bytes] = []

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self.sent.append(data)
        return super()._send_blocking(data, attributes, delay)


def test_a_wrapper_passes_the_encoded_document_and_absolute_expiry_unchanged(tmp_path: Path) -> None:
    inner = RecordingSQLiteKV(f"sqlite:///{tmp_path}/kv.db")
    outer = ForwardingKeyValueStore(ForwardingKeyValueStore(inner))
    outer.sync.create()
    outer.sync.put("a", {"n": 1.5, "s": "é"}, ttl=60)
    ((data, expires_at),) = inner.puts
    assert data == '{"n":1.5,"s":"é"}'.encode()
    item = inner.sync.get("a")
    assert item is not None and item.expires_at is not None and expires_at is not None
    # one absolute expiry, computed once at the outer face and stored as given (to the microsecond
    # SQLite keeps), not recomputed from a relative TTL by each layer
    assert abs((item.expires_at - expires_at).total_seconds()) < 1e-3
    anyio.run(lambda: outer.put("b", {"x": 1}))
    assert len(inner.puts) == 2 and inner.puts[1][0] == b'{"x":1}'


def test_the_outer_face_checks_the_inner_limits_before_any_hook(tmp_path: Path) -> None:
    inner = RecordingSQLiteKV(f"sqlite:///{tmp_path}/kv.db")
    outer = ForwardingKeyValueStore(inner, name="users")
    outer.sync.create()
    with pytest.raises(InvalidArgument, match=r"users: value for key 'big' is .* the limit is 64 bytes"):
        outer.sync.put("big", {"v": "x" * 100})
    with pytest.raises(InvalidArgument, match="key"):
        outer.sync.put("", {"v": 1})
    assert inner.puts == []


def test_a_queue_wrapper_sends_the_body_encoded_once(tmp_path: Path) -> None:
    inner = RecordingSQLiteQueue(f"sqlite:///{tmp_path}/q.db")
    outer = ForwardingQueue(inner)
    outer.sync.create()
    outer.sync.send({"big": 10**20, "f": 0.1})
    assert inner.sent == [b'{"big":100000000000000000000,"f":0.1}']
    (message,) = outer.sync.receive(wait=1)
    assert message.body == {"big": 10**20, "f": 0.1}
    outer.sync.ack(message)


def test_an_app_handle_forwards_to_the_provider_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    (tmp_path / "overcast.toml").write_text(f'[targets.local]\nkv.users = "sqlite:///{tmp_path}/users.db"\n')
    app = overcast.App("demo", config=tmp_path)
    users = app.kv("users")
    users.sync.create()
    version = users.sync.put("u1", {"name": "Ada"}, ttl=30)
    item = users.sync.get("u1")
    assert item is not None and item.version == version and item.expires_at is not None
    assert users.used == {"read", "write"}


@pytest.mark.parametrize(
    ("base", "hook", "call"),
    [
        (KeyValueStore, "_get", lambda s: s.sync.get("k")),
        (KeyValueStore, "_scan_page", lambda s: list(s.sync.scan())),
        (BlobStore, "_head", lambda s: s.sync.head("k")),
        (Queue, "_send", lambda s: s.sync.send({"a": 1})),
        (Topic, "_publish", lambda s: s.sync.publish({"a": 1})),
        (Cache, "_incr", lambda s: s.sync.incr("k")),
        (SecretStore, "_fetch", lambda s: s.sync.get("k")),
    ],
)
def test_a_provider_missing_a_hook_fails_at_once_naming_it(base: type, hook: str, call: Any) -> None:
    incomplete = type("IncompleteProvider", (base,), {})
    store = incomplete("memory://x")
    with pytest.raises(NotImplementedError, match=f"IncompleteProvider implements neither {hook} nor {hook}_blocking"):
        call(store)


def test_a_subclass_that_defines_one_form_gets_the_other_back() -> None:
    class NoGet(KeyValueStore):
        pass

    class WithGet(NoGet):
        def _get_blocking(self, key: str) -> None:
            return None

    assert WithGet("memory://x").sync.get("k") is None
    assert anyio.run(WithGet("memory://x").get, "k") is None
    with pytest.raises(NotImplementedError):
        NoGet("memory://x").sync.get("k")


def test_an_opened_handle_reaches_the_provider_without_a_frame_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once an access is recorded, the handle's hooks of that access are its provider's (its
    timed wrapper's) bound hooks; the access not yet used still goes through the handle and
    its check, and a reset puts every hook back, so the next call reaches the new target."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from overcast import telemetry

    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    (tmp_path / "overcast.toml").write_text(f'[targets.local]\nkv.users = "sqlite:///{tmp_path}/a.db"\n')
    app = overcast.App("demo", config=tmp_path)
    users = app.kv("users", allow=("read",))
    assert users.sync.get("u1") is None
    provider = users.provider
    assert users.__dict__["_get_blocking"] == provider._get_blocking
    assert users.__dict__["_check_key"] == provider._check_key
    assert "_put_blocking" not in users.__dict__ and users.used == {"read"}
    for _ in range(2):  # refused every time: a refused access is never bound
        with pytest.raises(overcast.errors.ConfigError, match="allow=\\['read'\\] but the code needs 'write'"):
            users.sync.put("u1", {"n": 1})
    with pytest.raises(InvalidArgument, match="users: key must not be empty"):
        users.sync.get("")
    reader = InMemoryMetricReader()  # a bound hook is still the timed wrapper's: counted once on
    telemetry.configure(metric_readers=[reader], span_processors=[], set_global=False)
    try:
        users.sync.get("u1")
        data = reader.get_metrics_data()
        counted = [
            p.count
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "overcast.upstream.duration"
            for p in m.data.data_points
            if p.attributes.get("overcast.resource") == "users" or p.attributes.get("resource") == "users"
        ]
        assert sum(counted) == 1
    finally:
        telemetry.shutdown()
    other = SQLiteKeyValueStore(f"sqlite:///{tmp_path}/b.db")
    other.sync.create()
    other.sync.put("u1", {"n": 2})
    (tmp_path / "overcast.toml").write_text(f'[targets.local]\nkv.users = "sqlite:///{tmp_path}/b.db"\n')
    app.use_config(tmp_path)
    assert "_get_blocking" not in users.__dict__
    item = users.sync.get("u1")
    assert item is not None and item.value == {"n": 2}
    assert anyio.run(users.get, "u1") == item
