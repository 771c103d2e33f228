"""What is particular to the Momento cache, against the FAKE Momento gRPC server (fake_momento.py).

The real ``momento`` SDK talks gRPC to the fake; these tests check what the provider sends
and how it maps the SDK's answers. The cache semantics are the conformance suite's job.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from fake_momento import FakeMomento, start_fake_momento
from momento import CacheClient, Configurations, CredentialProvider
from momento.responses import CacheGet

import overcast
from overcast.errors import ConfigError, InvalidArgument, NotFound, PermissionDenied, Throttled, Unavailable
from overcast.resources import bridge
from overcast.resources.cache import Cache


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMomento]:
    server = start_fake_momento()
    yield server
    server.stop()


def _url(fake: FakeMomento, name: str | None = None, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"local": f"127.0.0.1:{fake.port}", **options}.items())
    return f"momento://{name or 'c-' + uuid.uuid4().hex[:10]}?{query}"


def _created(url: str) -> Cache:
    cache = overcast.open_cache(url)
    bridge.run_sync(cache.create())
    return cache


def test_fake_values_are_the_json_any_momento_client_reads(fake: FakeMomento) -> None:
    cache = _created(_url(fake, "interop"))
    cache.sync.set("user:1", {"name": "Zoë", "n": [1, 2]})
    local = CredentialProvider.for_momento_local("127.0.0.1", fake.port)
    raw = CacheClient(Configurations.Laptop.latest(), local, timedelta(seconds=60))
    response = raw.get("interop", "user:1")
    assert isinstance(response, CacheGet.Hit)
    assert json.loads(response.value_bytes) == {"name": "Zoë", "n": [1, 2]}
    raw.set("interop", "counter", "41")
    assert cache.sync.incr("counter") == 42


def test_fake_create_is_idempotent_and_a_missing_cache_is_not_found(fake: FakeMomento) -> None:
    url = _url(fake)
    cache = overcast.open_cache(url)
    with pytest.raises(NotFound, match=r"create\(\)"):
        cache.sync.get("k")
    bridge.run_sync(cache.create())
    bridge.run_sync(cache.create())
    cache.sync.set("k", 1)
    assert cache.sync.get("k") == 1
    bridge.run_sync(cache.ping())


def test_fake_ttls_reach_the_server(fake: FakeMomento) -> None:
    cache = _created(_url(fake, default_ttl="30"))
    cache.sync.set("default", 1)
    cache.sync.set("explicit", 1, ttl=timedelta(hours=2))
    cache.sync.incr("counter")
    items = fake.caches[cache.location.host].items
    now = min(expires for _, expires in items.values()) - 30
    assert items[b"default"][1] - now == pytest.approx(30, abs=1)
    assert items[b"explicit"][1] - now == pytest.approx(7200, abs=1)
    assert items[b"counter"][1] - now == pytest.approx(30, abs=1)
    plain = _created(_url(fake))
    plain.sync.set("none", 1)
    (left,) = [expires for _, expires in fake.caches[plain.location.host].items.values()]
    assert left - now == pytest.approx(24 * 3600, abs=5)  # Momento's default ceiling


def test_fake_ttls_above_momentos_ceiling_are_refused_before_any_call(fake: FakeMomento) -> None:
    cache = _created(_url(fake))
    before = len(fake.calls)
    with pytest.raises(InvalidArgument, match="86400"):
        cache.sync.set("k", 1, ttl=timedelta(days=2))
    assert len(fake.calls) == before
    with pytest.raises(ConfigError, match="default_ttl"):
        overcast.open_cache(_url(fake, default_ttl=str(3 * 24 * 3600)))


def test_fake_prefix_shares_one_cache_between_resources(fake: FakeMomento) -> None:
    name = "shared-" + uuid.uuid4().hex[:8]
    a = _created(_url(fake, name, prefix="a:"))
    b = _created(_url(fake, name, prefix="b:"))
    a.sync.set("k", "from a")
    assert b.sync.get("k") is None
    assert b.sync.incr("k") == 1
    assert a.sync.get("k") == "from a"
    assert sorted(fake.caches[name].items) == [b"a:k", b"b:k"]


def test_fake_incr_of_a_non_integer_names_the_key(fake: FakeMomento) -> None:
    cache = _created(_url(fake))
    cache.sync.set("text", "hello")
    with pytest.raises(InvalidArgument, match=r"'text'.*integer"):
        cache.sync.incr("text")
    assert cache.sync.get("text") == "hello"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, Throttled),
        (grpc.StatusCode.INTERNAL, Unavailable),
    ],
)
def test_fake_server_errors_map_onto_overcast_errors(fake: FakeMomento, code: grpc.StatusCode, error: type) -> None:
    cache = _created(_url(fake))
    fake.fail_next(code, times=5)  # more than the SDK's retries
    try:
        with pytest.raises(error, match=cache.name.split("?")[0]):
            cache.sync.get("k")
    finally:
        fake._failures.clear()
    assert cache.sync.get("k") is None


def test_fake_unavailable_is_retried_by_the_sdk_then_raised(fake: FakeMomento) -> None:
    cache = _created(_url(fake))
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)  # the SDK retries these
    bridge.run_sync(cache.set("k", 1))
    assert bridge.run_sync(cache.get("k")) == 1
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, times=10)
    try:
        with pytest.raises(Unavailable):
            bridge.run_sync(cache.get("k"))
    finally:
        fake._failures.clear()


def test_fake_api_key_is_sent_and_refusal_is_permission_denied() -> None:
    guarded = start_fake_momento(api_key="secret-key")
    try:
        cache = overcast.open_cache(_url(guarded))
        with pytest.raises(PermissionDenied):
            bridge.run_sync(cache.create())
    finally:
        guarded.stop()


def test_unreachable_server_is_unavailable() -> None:
    from servers import free_port

    cache = overcast.open_cache(f"momento://c?local=127.0.0.1:{free_port()}&timeout=1")
    with pytest.raises(Unavailable):
        cache.sync.get("k")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("momento://?local=127.0.0.1:1", "name the cache"),
        ("momento://c?local=nowhere", "HOST:PORT"),
        ("momento://c?local=127.0.0.1:1&configuration=mars", "configuration"),
        ("momento://c?local=127.0.0.1:1&timeout=-1", "timeout"),
        ("momento://c?api_key_env=OVERCAST_TEST_NO_SUCH_KEY", "OVERCAST_TEST_NO_SUCH_KEY"),
    ],
)
def test_bad_configuration_is_refused_on_open(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        overcast.open_cache(url)


def test_an_unusable_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERCAST_TEST_MOMENTO_KEY", "not-a-key")
    with pytest.raises(ConfigError, match="OVERCAST_TEST_MOMENTO_KEY"):
        overcast.open_cache("momento://c?api_key_env=OVERCAST_TEST_MOMENTO_KEY")
    with pytest.raises(ConfigError, match="OVERCAST_TEST_MOMENTO_KEY"):
        overcast.open_cache("momento://c?api_key_env=OVERCAST_TEST_MOMENTO_KEY&endpoint=cell-1.example.com")


def test_fake_unavailable_retries_are_counted_by_telemetry(fake: FakeMomento) -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from overcast import telemetry

    cache = _created(_url(fake))
    reader = InMemoryMetricReader()
    telemetry.configure(service_name="momento-retries", metric_readers=[reader], span_processors=[], set_global=False)
    try:
        fake.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)  # the SDK retries these
        bridge.run_sync(cache.set("k", 1))
        data = reader.get_metrics_data()
        points = [
            p
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "overcast.retries"
            for p in m.data.data_points
        ]
        assert sum(p.value for p in points if p.attributes.get("upstream") == "momento") == 2
        assert {p.attributes.get("operation") for p in points} == {"set"}
    finally:
        telemetry.shutdown()
        fake._failures.clear()
