"""Azure Storage Queues on Azurite: the message envelope, the poison queue, topic queues."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

import overcast
from overcast.errors import InvalidArgument
from overcast.providers.azure.queues import (
    MAX_NAME,
    AzureStorageQueue,
    AzureStorageTopic,
    decode_message,
    subscription_queue_name,
)
from servers import Server


def _service() -> Any:
    return QueueServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])


def _queue(**options: str) -> AzureStorageQueue:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    queue = overcast.open_queue(f"azqueue://q-{uuid.uuid4().hex[:12]}" + (f"?{query}" if query else ""))
    assert isinstance(queue, AzureStorageQueue)
    queue.sync.create()
    return queue


def test_messages_carry_overcasts_id_and_attributes(azurite: Server) -> None:
    queue = _queue()
    sent = queue.sync.send({"ü": [1, "<&>"]}, attributes={"k": "v"})
    raw = _service().get_queue_client(queue.queue_name).peek_messages()[0].content
    head, body = raw.split("\n", 1)
    assert head == f'{{"id":"{sent}","a":{{"k":"v"}}}}' and body == '{"ü":[1,"<&>"]}'
    assert decode_message(raw.encode()) == ({"ü": [1, "<&>"]}, {"k": "v"}, sent)


def test_foreign_messages_are_read_as_json_or_text(azurite: Server) -> None:
    queue = _queue()
    client = _service().get_queue_client(queue.queue_name)
    client.send_message('{"from": "elsewhere"}')
    client.send_message("plain text")
    got = queue.sync.receive(max_messages=2, wait=1)
    assert sorted(str(m.body) for m in got) == ["plain text", "{'from': 'elsewhere'}"]
    assert all(m.attributes == {} and m.id for m in got)


def test_poison_queue_receives_messages_past_max_attempts(azurite: Server) -> None:
    queue = _queue(max_attempts="2")
    sent = queue.sync.send({"bad": True}, attributes={"a": "b"})
    for attempt in (1, 2):
        (message,) = queue.sync.receive(wait=1)
        assert message.attempts == attempt
        queue.sync.nack(message)
    assert queue.sync.receive(wait=0.2) == []
    poison = _service().get_queue_client(f"{queue.queue_name}-poison")
    assert decode_message(poison.peek_messages()[0].content) == ({"bad": True}, {"a": "b"}, sent)
    dead = queue.dead_letters()
    assert dead.queue_name == f"{queue.queue_name}-poison" and dead.max_attempts == 0


def test_a_stale_receipt_is_ignored(azurite: Server) -> None:
    queue = _queue()
    queue.sync.send({"n": 1})
    (first,) = queue.sync.receive(wait=1, visibility_timeout=1)
    (second,) = queue.sync.receive(wait=3)
    queue.sync.ack(first)  # stale: the message is out again
    queue.sync.nack(second)
    (third,) = queue.sync.receive(wait=1)
    assert third.attempts == 3
    queue.sync.ack(third)


def test_messages_too_large_with_attributes_are_refused(azurite: Server) -> None:
    queue = _queue()
    with pytest.raises(InvalidArgument, match="65536"):
        queue.sync.send("x" * (queue.limits.max_body_bytes - 2), attributes={f"a{i}": "v" * 2000 for i in range(9)})
    assert queue.sync.receive() == []


def test_queue_names_are_checked() -> None:
    for bad in ("ab", "Upper", "double--hyphen", "-start", "x" * (MAX_NAME + 1)):
        with pytest.raises(InvalidArgument, match="queue name"):
            AzureStorageQueue(f"azqueue://{bad}")
    with pytest.raises(InvalidArgument):
        AzureStorageQueue("azqueue://fine?max_attempts=x")


def test_subscription_queue_names_are_valid_and_distinct() -> None:
    names = ["mail", "sub/ü", "Sub/Ü", "a_b", "x" * 200, "🚀"]
    queues = [subscription_queue_name("topic-1", name) for name in names]
    assert len(set(queues)) == len(queues)
    assert queues[0] == "topic-1-mail"
    for queue in queues:
        AzureStorageQueue(f"azqueue://{queue}")  # valid, with room for -poison


def test_topics_publish_only_to_their_marked_queues(azurite: Server) -> None:
    topic = overcast.open_topic(f"azqueue://t-{uuid.uuid4().hex[:10]}")
    assert isinstance(topic, AzureStorageTopic)
    sub = topic.subscription("mail")
    sub.sync.create()
    lookalike = _service().get_queue_client(f"{topic.topic_name}-other")
    lookalike.create_queue()  # shares the prefix but is no subscription
    sent = topic.sync.publish({"n": 1})
    (message,) = sub.sync.receive(wait=1)
    assert message.id == sent
    assert list(lookalike.peek_messages()) == []
    props = _service().get_queue_client(sub.queue_name).get_queue_properties()
    assert props.metadata == {"overcast_topic": topic.topic_name}
