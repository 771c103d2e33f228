"""What is particular to the Redis providers (the conformance suites cover the semantics)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
import redis.cluster
from redis.crc import key_slot

import overcast
from overcast.errors import ConfigError, InvalidArgument, PermissionDenied, Unavailable
from servers import Server


def _url(server: Server, prefix: str) -> str:
    return f"{server.env['OVERCAST_TEST_REDIS_URL']}?prefix={prefix}"


def _keys(server: Server, prefix: str) -> list[bytes]:
    raw = redis.Redis.from_url(server.env["OVERCAST_TEST_REDIS_URL"])
    return sorted(raw.scan_iter(match=f"{{{prefix}}}*"))


def test_every_key_of_a_resource_sits_in_one_cluster_slot(redis_server: Server) -> None:
    prefix = f"slot-{uuid.uuid4().hex[:8]}"
    kv = overcast.open_kv(_url(redis_server, prefix))
    kv.sync.put("a", {"n": 1}, ttl=60)
    kv.sync.put("b/ü", {"n": 2})
    queue = overcast.open_queue(_url(redis_server, prefix + "-q"))
    queue.sync.send({"n": 1})
    queue.sync.send({"n": 2}, delay=60)
    (message,) = queue.sync.receive()
    for name in (prefix, prefix + "-q"):
        keys = _keys(redis_server, name)
        assert len(keys) >= 2
        assert len({key_slot(key) for key in keys}) == 1, keys
    queue.sync.ack(message)


def test_expired_documents_leave_the_scan_index(redis_server: Server) -> None:
    prefix = f"exp-{uuid.uuid4().hex[:8]}"
    kv = overcast.open_kv(_url(redis_server, prefix))
    kv.sync.put("short", {"n": 1}, ttl=0.2)
    kv.sync.put("long", {"n": 2})
    raw = redis.Redis.from_url(redis_server.env["OVERCAST_TEST_REDIS_URL"])
    assert raw.zcard(f"{{{prefix}}}:idx") == 2
    time.sleep(0.4)
    assert [item.key for item in kv.sync.scan()] == ["long"]
    assert raw.zcard(f"{{{prefix}}}:idx") == 1


def test_an_ack_with_a_stale_receipt_changes_nothing(redis_server: Server) -> None:
    queue = overcast.open_queue(_url(redis_server, f"stale-{uuid.uuid4().hex[:8]}"))
    queue.sync.send({"n": 1})
    (first,) = queue.sync.receive(visibility_timeout=0.2)
    time.sleep(0.3)
    (second,) = queue.sync.receive(visibility_timeout=30)
    assert (second.id, second.attempts) == (first.id, 2)
    queue.sync.ack(first)  # the earlier delivery's receipt: the message stays in flight
    assert queue.sync.depth() == 0
    queue.sync.nack(second)
    (third,) = queue.sync.receive()
    assert third.attempts == 3
    queue.sync.ack(third)
    assert queue.sync.receive(wait=0.2) == []


def test_incr_on_a_document_is_a_clear_error(redis_server: Server) -> None:
    cache = overcast.open_cache(_url(redis_server, f"c-{uuid.uuid4().hex[:8]}"))
    cache.sync.set("user", {"name": "Ada"})
    with pytest.raises(InvalidArgument, match=r"'user'.*does not hold an integer"):
        cache.sync.incr("user")


def test_a_default_ttl_applies_to_new_counters(redis_server: Server) -> None:
    prefix = f"ttl-{uuid.uuid4().hex[:8]}"
    cache = overcast.open_cache(_url(redis_server, prefix) + "&default_ttl=30")
    cache.sync.incr("hits")
    raw = redis.Redis.from_url(redis_server.env["OVERCAST_TEST_REDIS_URL"])
    assert 0 < raw.pttl(f"{{{prefix}}}:hits") <= 30_000


def test_braces_in_a_prefix_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="may not hold braces"):
        overcast.open_kv("redis://127.0.0.1:1/0?prefix=a{b}")


def test_a_bad_max_attempts_is_refused() -> None:
    with pytest.raises(ConfigError, match="option max_attempts must be a positive whole number"):
        overcast.open_queue("redis://127.0.0.1:1/0?prefix=q&max_attempts=0")


def test_an_unreachable_server_is_unavailable_naming_the_resource() -> None:
    kv = overcast.open_kv("redis://127.0.0.1:1/0?prefix=nowhere&socket_connect_timeout=0.5", name="sessions")
    with pytest.raises(Unavailable, match="sessions: Redis"):
        kv.sync.get("k")


def test_credentials_come_from_the_environment(redis_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(redis_server.env["OVERCAST_TEST_REDIS_URL"])
    raw.acl_setuser(user, enabled=True, passwords=["+right-password"], keys=["*"], commands=["+@all"])
    try:
        monkeypatch.setenv("APP_REDIS_USER", user)
        monkeypatch.setenv("APP_REDIS_PASSWORD", "right-password")
        url = (
            _url(redis_server, f"acl-{uuid.uuid4().hex[:6]}")
            + "&username_env=APP_REDIS_USER&password_env=APP_REDIS_PASSWORD"
        )
        cache = overcast.open_cache(url, name="acl")
        cache.sync.set("k", 1)
        assert cache.sync.get("k") == 1
        monkeypatch.setenv("WRONG_PASSWORD", "wrong")
        wrong = overcast.open_cache(url.replace("APP_REDIS_PASSWORD", "WRONG_PASSWORD"), name="acl-wrong")
        with pytest.raises(PermissionDenied, match="acl-wrong: Redis"):
            wrong.sync.get("k")
    finally:
        raw.acl_deluser(user)


def test_a_topic_and_its_subscriptions_sit_in_one_cluster_slot(redis_server: Server) -> None:
    prefix = f"topic-{uuid.uuid4().hex[:8]}"
    topic = overcast.open_topic(_url(redis_server, prefix))
    subs = [topic.subscription(name) for name in ("mail", "a:dead", "a", "sub/ü")]
    for sub in subs:
        sub.sync.create()
    topic.sync.publish({"n": 1})
    keys = _keys(redis_server, prefix)
    assert len({key_slot(key) for key in keys}) == 1, keys
    for sub in subs:  # "a:dead" is escaped: it is not the dead-letter queue of "a"
        (message,) = sub.sync.receive()
        assert message.body == {"n": 1}
        sub.sync.ack(message)
    assert subs[2].dead_letters().sync.receive() == []


def test_a_subscription_gets_what_is_published_after_its_creation(redis_server: Server) -> None:
    topic = overcast.open_topic(_url(redis_server, f"late-{uuid.uuid4().hex[:8]}"))
    early = topic.subscription("early")
    early.sync.create()
    first = topic.sync.publish({"n": 1})
    late = topic.subscription("late", max_attempts=1)
    late.sync.create()
    second = topic.sync.publish({"n": 2})
    assert [m.id for m in early.sync.receive(max_messages=10)] == [first, second]
    (message,) = late.sync.receive(max_messages=10, visibility_timeout=0.1)
    assert message.id == second
    time.sleep(0.2)
    assert late.sync.receive() == []  # one attempt allowed: it went to the dead letters
    assert [m.id for m in late.dead_letters().sync.receive()] == [second]


def test_topic_options_are_checked(redis_server: Server) -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        overcast.open_topic(_url(redis_server, "t") + "&max_attempts=0")
    topic = overcast.open_topic(_url(redis_server, "t"))
    with pytest.raises(InvalidArgument, match="max_attempts"):
        topic.subscription("s", max_attempts=0)


def test_resources_spread_over_the_nodes_of_a_cluster(redis_cluster: Server) -> None:
    base = redis_cluster.env["OVERCAST_TEST_REDIS_CLUSTER_URL"]
    nodes = set()
    for i in range(12):
        prefix = f"spread-{i}-{uuid.uuid4().hex[:6]}"
        kv = overcast.open_kv(f"{base}?cluster=true&prefix={prefix}")
        kv.sync.put_many({"a": {"n": 1}, "b": {"n": 2}})
        assert [item.key for item in kv.sync.scan()] == ["a", "b"]
        raw = redis.cluster.RedisCluster.from_url(base)
        nodes.add(raw.get_node_from_key(f"{{{prefix}}}:idx").name)
    assert len(nodes) > 1


def test_cluster_options_are_checked(redis_cluster: Server) -> None:
    base = redis_cluster.env["OVERCAST_TEST_REDIS_CLUSTER_URL"]
    with pytest.raises(ConfigError, match="cluster must be true or false"):
        overcast.open_cache(f"{base}?cluster=maybe")
    with pytest.raises(InvalidArgument, match="database 0"):
        overcast.open_cache(base.replace("/0", "/3") + "?cluster=true")


def test_async_writes_survive_a_script_flush(redis_server: Server) -> None:
    from overcast.resources import bridge

    kv = overcast.open_kv(_url(redis_server, f"flush-{uuid.uuid4().hex[:8]}"))
    version = bridge.run_sync(kv.put("k", {"n": 1}))
    redis.Redis.from_url(redis_server.env["OVERCAST_TEST_REDIS_URL"]).script_flush()
    version = bridge.run_sync(kv.put("k", {"n": 2}, if_version=version))  # EVALSHA misses, EVAL reloads
    assert bridge.run_sync(kv.delete("k", if_version=version)) is True
    assert kv.sync.put("k", {"n": 3})  # and the blocking client's script object still works
