"""What is particular to Pub/Sub queues and topics, on Google's emulator with the real client:
the subscription and dead-letter policy created, messages seen by a raw subscriber, ordering
keys, and what Pub/Sub cannot do."""

from __future__ import annotations

import uuid

import pytest

import overcast
from overcast.errors import ConfigError, NotSupported
from overcast.providers.gcp.pubsub import PubSubQueue, PubSubTopic, _client

pytestmark = pytest.mark.usefixtures("pubsub_emulator")


def _name() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


def test_queue_is_a_topic_with_one_subscription_and_a_dead_letter_policy() -> None:
    queue = overcast.open_queue(f"pubsub://{_name()}?max_attempts=3")
    assert isinstance(queue, PubSubQueue)
    queue.sync.create()
    queue.sync.create()  # idempotent
    sub = _client("subscriber").get_subscription(subscription=queue.subscription_path)
    assert sub.topic == queue.topic_path
    assert sub.dead_letter_policy.dead_letter_topic == queue.dead_path
    assert sub.dead_letter_policy.max_delivery_attempts == 100
    sent = queue.sync.send({"n": 1})
    for attempt in (1, 2, 3):
        (message,) = queue.sync.receive(wait=2)
        assert (message.id, message.attempts) == (sent, attempt)
        queue.sync.nack(message)
    assert queue.sync.receive(wait=0.5) == []
    (letter,) = queue.dead_letters().sync.receive(wait=2)
    assert letter.id == sent and letter.body == {"n": 1} and letter.attributes == {}
    with pytest.raises(NotSupported):
        queue.dead_letters().dead_letters()


def test_ordering_key_delivers_in_order() -> None:
    queue = overcast.open_queue(f"pubsub://{_name()}?ordering_key=user-1")
    queue.sync.create()
    sub = _client("subscriber").get_subscription(subscription=queue.subscription_path)
    assert sub.enable_message_ordering
    ids = [queue.sync.send({"i": i}) for i in range(12)]
    got = []
    while len(got) < 12:
        for message in queue.sync.receive(max_messages=10, wait=1):
            got.append(message)
            queue.sync.ack(message)
    assert [m.id for m in got] == ids and [m.body["i"] for m in got] == list(range(12))


def test_topic_subscriptions_are_named_after_the_topic() -> None:
    topic = overcast.open_topic(f"pubsub://{_name()}")
    assert isinstance(topic, PubSubTopic)
    topic.sync.create()
    sub = topic.subscription("billing/ü", max_attempts=7)
    assert isinstance(sub, PubSubQueue)
    assert sub.subscription_id == f"{topic.topic_id}.billing~2F~C3~BC" and sub.max_attempts == 7
    sub.sync.create()
    topic.sync.publish({"x": 1}, attributes={"kind": "test"})
    (message,) = sub.sync.receive(wait=2)
    assert message.body == {"x": 1} and message.attributes == {"kind": "test"}
    sub.sync.ack(message)


def test_what_pubsub_cannot_do() -> None:
    queue = overcast.open_queue(f"pubsub://{_name()}")
    queue.sync.create()
    with pytest.raises(NotSupported) as info:
        queue.sync.send({}, delay=5)
    assert "Cloud Tasks" in str(info.value)
    with pytest.raises(NotSupported):
        queue.sync.depth()
    for bad in ("pubsub://ab", "pubsub://googthing", "pubsub://1abc", "pubsub://abc?max_attempts=101"):
        with pytest.raises(ConfigError):
            overcast.open_queue(bad)


def test_push_subscription_with_an_oidc_token() -> None:
    name = _name()
    endpoint = "http://127.0.0.1:9/_push"
    queue = overcast.open_queue(
        f"pubsub://{name}?push_endpoint={endpoint}&push_service_account=push@overcast-test.iam.gserviceaccount.com"
    )
    assert isinstance(queue, PubSubQueue)
    queue.sync.create()
    sub = _client("subscriber").get_subscription(subscription=queue.subscription_path)
    assert sub.push_config.push_endpoint == endpoint
    assert sub.push_config.oidc_token.service_account_email == "push@overcast-test.iam.gserviceaccount.com"
