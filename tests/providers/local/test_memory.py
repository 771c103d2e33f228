"""What is particular to the memory:// providers: sharing by name, privacy without one, cache bounds.

The semantics they share with the durable providers are in the conformance suites.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

import overcast
from overcast.errors import ConfigError, InvalidArgument, NotFound
from overcast.providers.local.memory import (
    MemoryBlobStore,
    MemoryCache,
    MemoryKeyValueStore,
    MemoryQueue,
    MemorySecretStore,
    MemoryTopic,
)


def _name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_registry_opens_memory_providers_with_their_capabilities() -> None:
    name = _name()
    expected = [
        (overcast.open_kv, MemoryKeyValueStore, {"ttl", "ordered_scan"}),
        (overcast.open_bucket, MemoryBlobStore, {"conditional"}),
        (overcast.open_queue, MemoryQueue, {"delay", "dead_letter", "depth", "peek"}),
        (overcast.open_topic, MemoryTopic, {"delay", "dead_letter"}),
        (overcast.open_cache, MemoryCache, set()),
        (overcast.open_secrets, MemorySecretStore, set()),
    ]
    for opener, cls, capabilities in expected:
        resource = opener(f"memory://{name}")
        assert resource.__class__ is cls  # in its timed wrapper, which is transparent
        assert resource.capabilities == capabilities
        assert resource.offload is False


def test_same_name_shares_data_in_every_kind() -> None:
    name = _name()
    url = f"memory://{name}"
    version = overcast.open_kv(url).sync.put("k", {"v": 1})
    item = overcast.open_kv(url).sync.get("k")
    assert item is not None and item.version == version

    overcast.open_bucket(url).sync.put("o", b"data")
    assert overcast.open_bucket(url).sync.get("o") == b"data"

    message_id = overcast.open_queue(url).sync.send("m")
    assert [m.id for m in overcast.open_queue(url).sync.receive()] == [message_id]

    overcast.open_topic(url).subscription("s").sync.create()
    published = overcast.open_topic(url).sync.publish("e")
    assert [m.id for m in overcast.open_topic(url).subscription("s").sync.receive()] == [published]

    overcast.open_cache(url).sync.set("c", [1, 2])
    assert overcast.open_cache(url).sync.get("c") == [1, 2]

    overcast.open_secrets(url).set("s", "v")  # type: ignore[attr-defined]
    assert overcast.open_secrets(url).sync.get("s") == "v"


def test_kinds_and_names_do_not_mix() -> None:
    name, other = _name(), _name()
    overcast.open_kv(f"memory://{name}").sync.put("k", {"v": 1})
    assert overcast.open_kv(f"memory://{other}").sync.get("k") is None
    overcast.open_queue(f"memory://{name}").sync.send("q")
    assert overcast.open_topic(f"memory://{name}").subscription("s").sync.receive() == []
    assert overcast.open_queue(f"memory://{other}").sync.receive() == []


def test_without_a_name_each_instance_is_private() -> None:
    kv_a, kv_b = overcast.open_kv("memory://"), overcast.open_kv("memory://")
    kv_a.sync.put("k", {"v": 1})
    assert kv_b.sync.get("k") is None and kv_a.sync.get("k") is not None

    bucket_a, bucket_b = overcast.open_bucket("memory://"), overcast.open_bucket("memory://")
    bucket_a.sync.put("o", b"x")
    assert bucket_b.sync.head("o") is None

    queue_a, queue_b = overcast.open_queue("memory://"), overcast.open_queue("memory://")
    queue_a.sync.send("m")
    assert queue_b.sync.receive() == []
    assert len(queue_a.sync.receive()) == 1

    cache_a, cache_b = overcast.open_cache("memory://"), overcast.open_cache("memory://")
    cache_a.sync.set("c", 1)
    assert cache_b.sync.get("c") is None

    secrets_a, secrets_b = overcast.open_secrets("memory://"), overcast.open_secrets("memory://")
    secret = _name()
    secrets_a.set(secret, "a")  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match=secret):
        secrets_b.sync.get(secret)


def test_versions_never_repeat_across_delete_and_stores() -> None:
    kv = overcast.open_kv("memory://")
    other = overcast.open_kv("memory://")
    seen = set()
    for _ in range(3):
        seen.add(kv.sync.put("k", {"v": 1}))
        seen.add(other.sync.put("k", {"v": 1}))
        kv.sync.delete("k")
    assert len(seen) == 6


def test_values_are_copies_not_shared_objects() -> None:
    kv = overcast.open_kv("memory://")
    value = {"list": [1]}
    kv.sync.put("k", value)
    value["list"].append(2)
    item = kv.sync.get("k")
    assert item is not None and item.value == {"list": [1]}
    item.value["list"].append(3)
    again = kv.sync.get("k")
    assert again is not None and again.value == {"list": [1]}


def test_cache_evicts_least_recently_used_by_count() -> None:
    cache = overcast.open_cache("memory://?max_items=3")
    for key in ("a", "b", "c"):
        cache.sync.set(key, key)
    assert cache.sync.get("a") == "a"  # now the most recent
    cache.sync.set("d", "d")
    assert [cache.sync.get(k) for k in ("a", "b", "c", "d")] == ["a", None, "c", "d"]
    cache.sync.incr("n")  # a new counter counts as an entry too
    assert sum(cache.sync.get(k) is not None for k in ("a", "c", "d", "n")) == 3


def test_cache_evicts_by_bytes_and_skips_values_larger_than_the_bound() -> None:
    # Each entry counts its key and its JSON: "k1" + '"xxxxxxxx"' = 2 + 10 bytes.
    cache = overcast.open_cache("memory://?max_bytes=30")
    cache.sync.set("k1", "x" * 8)
    cache.sync.set("k2", "x" * 8)
    assert cache.sync.get("k1") is not None  # k2 is now the least recent
    cache.sync.set("k3", "x" * 8)  # 36 bytes: one must go
    assert [cache.sync.get(k) is not None for k in ("k1", "k2", "k3")] == [True, False, True]

    cache.sync.set("big", "x" * 40)
    assert cache.sync.get("big") is None
    assert cache.sync.get("k1") is not None and cache.sync.get("k3") is not None


def test_cache_replacing_a_value_frees_its_old_bytes() -> None:
    cache = overcast.open_cache("memory://?max_bytes=40")
    cache.sync.set("a", "x" * 20)
    for n in range(10):
        cache.sync.set("a", "y" * (10 + n))  # the old sizes must not accumulate
    cache.sync.set("b", "z" * 5)
    assert cache.sync.get("a") == "y" * 19 and cache.sync.get("b") == "z" * 5


def test_cache_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_items"):
        overcast.open_cache("memory://?max_items=0")
    with pytest.raises(ConfigError, match="max_bytes"):
        overcast.open_cache("memory://?max_bytes=lots")
    with pytest.raises(ConfigError, match="ttl"):
        overcast.open_cache("memory://?ttl=-5")
    with pytest.raises(ConfigError, match="ttl"):
        overcast.open_cache("memory://?ttl=nan")
    name = _name()
    overcast.open_cache(f"memory://{name}?max_items=5")
    overcast.open_cache(f"memory://{name}")  # no explicit limit: takes the shared one
    with pytest.raises(ConfigError, match="max_items=5"):
        overcast.open_cache(f"memory://{name}?max_items=6")


def test_cache_default_ttl_option_expires_values_and_new_counters() -> None:
    cache = overcast.open_cache("memory://?ttl=0.2")
    cache.sync.set("k", 1)
    cache.sync.incr("n")
    cache.sync.set("kept", 1, ttl=60)
    deadline = time.monotonic() + 5
    while (cache.sync.get("k") is not None or cache.sync.get("n") is not None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.sync.get("k") is None and cache.sync.get("n") is None
    assert cache.sync.get("kept") == 1


def test_cache_incr_rejects_non_integers_naming_the_key() -> None:
    cache = overcast.open_cache("memory://")
    for value in ("3", 1.5, True, None, [1]):
        cache.sync.set("odd key", value)
        with pytest.raises(InvalidArgument, match="'odd key'"):
            cache.sync.incr("odd key")
    cache.sync.set("n", 41)
    assert cache.sync.incr("n") == 42 and cache.sync.get("n") == 42


def test_cache_incr_is_atomic_under_threads() -> None:
    cache = overcast.open_cache(f"memory://{_name()}")

    def bump() -> None:
        for _ in range(500):
            cache.sync.incr("hits")

    workers = [threading.Thread(target=bump) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert cache.sync.get("hits") == 2000


def test_secrets_set_on_the_class_reach_every_store_and_instances_override() -> None:
    secret = _name()
    MemorySecretStore.set(secret, "everywhere")
    named = overcast.open_secrets(f"memory://{_name()}")
    private = overcast.open_secrets("memory://")
    assert named.sync.get(secret) == private.sync.get(secret) == "everywhere"

    named.set(secret, "mine")  # type: ignore[attr-defined]
    assert named.sync.get(secret) == "mine"
    assert private.sync.get(secret) == "everywhere"
    MemorySecretStore.set(secret, "rotated")
    assert private.sync.get(secret) == "rotated"  # not cached by default


def test_secrets_missing_or_bad_give_clear_errors() -> None:
    store = overcast.open_secrets("memory://", name="vault")
    with pytest.raises(NotFound, match=r"vault.*'no-such-secret'"):
        asyncio.run(store.get("no-such-secret"))
    with pytest.raises(InvalidArgument, match="must be a str"):
        MemorySecretStore.set("n", 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="secret name"):
        MemorySecretStore.set("", "v")


def test_blocking_receive_wakes_when_another_thread_sends() -> None:
    queue = overcast.open_queue("memory://")
    sender = threading.Timer(0.1, queue.sync.send, args=("late",))
    sender.start()
    got = queue.sync.receive(wait=10)
    sender.join()
    assert [m.body for m in got] == ["late"]


def test_async_receive_waits_without_blocking_the_loop() -> None:
    queue = overcast.open_queue("memory://")

    async def scenario() -> list[str]:
        async def send_later() -> None:
            await asyncio.sleep(0.05)  # runs only if receive yields the loop while waiting
            await queue.send("late")

        task = asyncio.create_task(send_later())
        got = await queue.receive(wait=10)
        await task
        return [m.body for m in got]

    assert asyncio.run(scenario()) == ["late"]


def test_subscription_and_dead_letter_urls_reopen_the_same_queues() -> None:
    name = _name()
    topic = overcast.open_topic(f"memory://{name}")
    sub = topic.subscription("audit", max_attempts=1)
    assert str(sub.location) == f"memory://{name}?subscription=audit&max_attempts=1"
    sub.sync.create()
    message_id = topic.sync.publish("event")

    reopened = overcast.open_queue(str(sub.location))
    (first,) = reopened.sync.receive(visibility_timeout=0)
    assert first.id == message_id
    assert reopened.sync.receive() == []  # moved to the dead letters

    dead = overcast.open_queue(str(sub.dead_letters().location))
    assert [m.id for m in dead.sync.receive()] == [message_id]
    with pytest.raises(InvalidArgument, match="dead-letter queue"):
        dead.dead_letters()


def test_stale_receipt_is_ignored() -> None:
    queue = overcast.open_queue("memory://")
    queue.sync.send("job")
    (first,) = queue.sync.receive(visibility_timeout=0)
    (second,) = queue.sync.receive(visibility_timeout=30)
    assert second.id == first.id and second.attempts == 2
    queue.sync.ack(first)
    queue.sync.nack(first)
    assert queue.sync.receive() == []
    queue.sync.nack(second)
    (third,) = queue.sync.receive()
    assert third.attempts == 3


def test_zero_visibility_timeout_delivers_each_message_once_per_receive() -> None:
    queue = overcast.open_queue("memory://")
    sent = [queue.sync.send(n) for n in range(3)]
    got = queue.sync.receive(max_messages=10, visibility_timeout=0)
    assert [m.id for m in got] == sent
    again = queue.sync.receive(max_messages=10, visibility_timeout=0)
    assert [(m.id, m.attempts) for m in again] == [(i, 2) for i in sent]
