"""S3, SQS and SNS specifics the suites do not see: multipart uploads, presigned URLs fetched
over HTTP, FIFO order and deduplication, redrive policies, the SNS envelope."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import overcast
from overcast.errors import ConfigError, Conflict, NotSupported
from overcast.providers.aws.s3 import S3BlobStore
from overcast.providers.aws.sns import SNSFifoSubscription, SNSFifoTopic, SNSTopic
from overcast.providers.aws.sqs import SQSFifoQueue, SQSQueue

MIB = 1024 * 1024

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bucket(moto_server: Any) -> S3BlobStore:
    store = overcast.open_bucket(f"s3://{_name('b')}/p?multipart_threshold={5 * MIB}&part_size={5 * MIB}")
    assert isinstance(store, S3BlobStore)
    store.sync.create()
    return store


def _operations(store: Any, service: str) -> list[str]:
    seen: list[str] = []
    store.client.meta.events.register(
        f"provide-client-params.{service}", lambda params, model, **_: seen.append(model.name)
    )
    return seen


def test_multipart_above_the_threshold(bucket: S3BlobStore) -> None:
    data = os.urandom(11 * MIB + 3)
    seen = _operations(bucket, "s3")
    info = bucket.sync.put("big", data, metadata={"kind": "blob"}, content_type="application/x-big")
    assert seen.count("UploadPart") == 3 and "PutObject" not in seen
    assert info.etag.endswith("-3") and info.size == len(data)
    head = bucket.sync.head("big")
    assert head is not None and head.etag == info.etag and head.metadata == {"kind": "blob"}
    assert head.content_type == "application/x-big"
    assert bucket.sync.get("big") == data
    assert bucket.sync.get("big", start=5 * MIB - 2, end=5 * MIB + 2) == data[5 * MIB - 2 : 5 * MIB + 2]
    with pytest.raises(Conflict):
        bucket.sync.put("big", data, if_absent=True)
    assert seen.count("AbortMultipartUpload") == 1
    small = bucket.sync.put("small", b"x" * 100)
    assert "-" not in small.etag


async def test_streamed_multipart_upload(bucket: S3BlobStore) -> None:
    parts = [os.urandom(MIB) for _ in range(12)]

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    info = await bucket.put("streamed", chunks())
    assert info.etag.endswith("-3") and info.size == 12 * MIB
    assert b"".join([c async for c in bucket.stream("streamed")]) == b"".join(parts)
    assert bucket.sync.put("sync-streamed", iter(parts)).etag.endswith("-3")
    assert bucket.sync.get("sync-streamed") == b"".join(parts)


async def test_presigned_urls_work_over_http(bucket: S3BlobStore) -> None:
    await bucket.put("doc.txt", b"hello", content_type="text/plain")
    with urllib.request.urlopen(await bucket.url("doc.txt"), timeout=10) as response:
        assert response.read() == b"hello"
    put_url = bucket.sync.url("upload.bin", method="PUT")
    request = urllib.request.Request(
        put_url, data=b"uploaded", method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert await bucket.get("upload.bin") == b"uploaded"


def test_keys_live_under_the_prefix(bucket: S3BlobStore) -> None:
    bucket.sync.put("a/b", b"x")
    raw = bucket.client.list_objects_v2(Bucket=bucket.bucket)["Contents"]
    assert [entry["Key"] for entry in raw] == ["p/a/b"]
    assert bucket.limits.max_key_bytes == 1024 - len("p/")


async def test_fifo_queue_keeps_order_and_never_deduplicates_sends(moto_server: Any) -> None:
    queue = overcast.open_queue(f"sqs://{_name('f')}.fifo")
    assert isinstance(queue, SQSFifoQueue) and not queue.supports("delay")
    await queue.create()
    ids = [await queue.send({"n": n}) for n in (1, 2, 3, 3)]
    assert len(set(ids)) == 4
    got = []
    while len(got) < 4:
        batch = await queue.receive(max_messages=10, wait=1)
        assert batch
        got += batch
        for message in batch:
            await queue.ack(message)
    assert [m.body for m in got] == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 3}]
    with pytest.raises(NotSupported, match=rf"FIFO queue {queue.queue_name} .*delay=SECONDS"):
        await queue.send({"late": True}, delay=5)
    with pytest.raises(NotSupported, match=queue.queue_name):
        queue.sync.send({"late": True}, delay=0.5)
    dead = queue.dead_letters()
    assert dead.queue_name.endswith("-dlq.fifo") and isinstance(dead, SQSFifoQueue)


def _raw_receive(queue: Any, count: int = 10) -> list[dict[str, Any]]:
    """Messages as SQS hands them out, with their FIFO system attributes (then made visible again)."""
    raw = queue.client.receive_message(
        QueueUrl=queue.queue_url(),
        MaxNumberOfMessages=count,
        WaitTimeSeconds=1,
        MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
    ).get("Messages", [])
    for message in raw:
        queue.client.change_message_visibility(
            QueueUrl=queue.queue_url(), ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(raw)


def test_fifo_group_is_locked_while_a_message_is_in_flight(moto_server: Any) -> None:
    queue = overcast.open_queue(f"sqs://{_name('f')}.fifo").sync
    queue.create()
    for n in range(3):
        queue.send({"n": n})
    (first,) = queue.receive(wait=1)
    assert first.body == {"n": 0}
    assert queue.receive(max_messages=10, wait=1) == []  # SQS hands out nothing more of the group
    queue.ack(first)
    assert [m.body for m in queue.receive(max_messages=10, wait=1)] == [{"n": 1}, {"n": 2}]


def test_fifo_group_by_and_dedup_by_attributes(moto_server: Any) -> None:
    queue = overcast.open_queue(f"sqs://{_name('f')}.fifo?group_by=customer&dedup_by=idempotency-key")
    assert isinstance(queue, SQSFifoQueue)
    queue.sync.create()
    long_value = "ü" * 200  # not a valid group id as is: sent as its SHA-256
    queue.sync.send({"n": 1}, attributes={"customer": "ada", "idempotency-key": "k1"})
    queue.sync.send({"n": 2}, attributes={"customer": "ada", "idempotency-key": "k1"})  # a repeat: dropped
    queue.sync.send({"n": 3}, attributes={"customer": long_value, "idempotency-key": "k2"})
    queue.sync.send({"n": 4})  # no attributes: the group "default", a fresh deduplication id
    raw = _raw_receive(queue)
    got = {json.loads(m["Body"])["n"]: m["Attributes"] for m in raw}
    assert sorted(got) == [1, 3, 4]
    assert got[1] == {"MessageGroupId": "ada", "MessageDeduplicationId": "k1"}
    assert got[3]["MessageGroupId"] == hashlib.sha256(long_value.encode()).hexdigest()
    assert got[4]["MessageGroupId"] == "default" and len(got[4]["MessageDeduplicationId"]) == 32
    # A message in flight holds back its own group only.
    held = queue.sync.receive(wait=1)
    others = queue.sync.receive(max_messages=10, wait=1)
    assert sorted(m.body["n"] for m in held + others) == [1, 3, 4]


def test_fifo_content_deduplication_and_queue_delay(moto_server: Any) -> None:
    queue = overcast.open_queue(f"sqs://{_name('f')}.fifo?deduplication=content&delay=1")
    assert isinstance(queue, SQSFifoQueue)
    queue.sync.create()
    attrs = queue.client.get_queue_attributes(QueueUrl=queue.queue_url(), AttributeNames=["All"])["Attributes"]
    assert (attrs["ContentBasedDeduplication"], attrs["DelaySeconds"]) == ("true", "1")
    first = queue.sync.send({"same": "body"})
    queue.sync.send({"same": "body"})  # SQS hashes the body: a duplicate within 5 minutes
    assert queue.sync.receive(wait=0) == []  # the queue's delay holds every message back
    (message,) = queue.sync.receive(max_messages=10, wait=3)
    assert (message.id, message.body) == (first, {"same": "body"})
    queue.sync.ack(message)
    assert queue.sync.receive(wait=1) == []


def test_fifo_dead_letters_go_to_a_fifo_queue(moto_server: Any) -> None:
    queue = overcast.open_queue(f"sqs://{_name('f')}.fifo?max_attempts=1")
    assert isinstance(queue, SQSFifoQueue)
    queue.sync.create()
    attrs = queue.client.get_queue_attributes(QueueUrl=queue.queue_url(), AttributeNames=["All"])["Attributes"]
    policy = json.loads(attrs["RedrivePolicy"])
    assert policy["maxReceiveCount"] == 1
    assert policy["deadLetterTargetArn"].endswith(":" + queue.queue_name[: -len(".fifo")] + "-dlq.fifo")
    dead = queue.dead_letters()
    assert isinstance(dead, SQSFifoQueue) and dead.queue_name == queue.dead_letter_name
    dead_attrs = dead.client.get_queue_attributes(QueueUrl=dead.queue_url(), AttributeNames=["All"])["Attributes"]
    assert dead_attrs["FifoQueue"] == "true"
    sent = [queue.sync.send({"n": n}) for n in range(2)]
    for _ in sent:
        (message,) = queue.sync.receive(wait=1)
        queue.sync.nack(message)
    assert queue.sync.receive(max_messages=10, wait=1) == []
    letters = dead.sync.receive(max_messages=10, wait=1)
    assert [m.id for m in letters] == sent  # in order, in the FIFO dead-letter queue


def test_fifo_names_and_options(moto_server: Any) -> None:
    longest = "q" * 75 + ".fifo"
    queue = overcast.open_queue(f"sqs://{longest}")
    assert isinstance(queue, SQSFifoQueue)
    assert queue.dead_letter_name == "q" * 71 + "-dlq.fifo" and len(queue.dead_letter_name) == 80
    queue.sync.create()
    assert queue.dead_letters().queue_name == queue.dead_letter_name
    with pytest.raises(ConfigError, match="1-80"):
        overcast.open_queue(f"sqs://{'q' * 76}.fifo")
    with pytest.raises(ConfigError, match="'group' applies to FIFO queues only"):
        overcast.open_queue("sqs://plain?group=a")
    with pytest.raises(ConfigError, match="'dedup_by' applies to FIFO topics only"):
        overcast.open_topic("sns://plain?dedup_by=a")
    with pytest.raises(ConfigError, match="deduplication must be"):
        overcast.open_queue("sqs://q.fifo?deduplication=body")
    with pytest.raises(ConfigError, match="group must be"):
        overcast.open_queue("sqs://q.fifo?group=" + "x" * 129)
    with pytest.raises(ConfigError, match="option delay must be a whole number from 0 to 900 seconds"):
        overcast.open_queue("sqs://q?delay=901")


async def test_fifo_topic_fans_out_to_fifo_subscriptions(moto_server: Any) -> None:
    topic = overcast.open_topic(f"sns://{_name('t')}.fifo?group_by=customer")
    assert isinstance(topic, SNSFifoTopic) and topic.supports("fifo")
    await topic.create()
    sub = topic.subscription("audit", max_attempts=2)
    assert isinstance(sub, SNSFifoSubscription) and sub.fifo and not sub.supports("delay")
    assert sub.queue_name.endswith("-audit.fifo") and sub.dead_letter_name.endswith("-audit-dlq.fifo")
    await sub.create()
    with pytest.raises(NotSupported, match=f"FIFO queue {sub.queue_name} takes no per-message delay"):
        await sub.send({"late": True}, delay=1)
    ids = [await topic.publish({"n": n}, attributes={"customer": "ada"}) for n in range(3)]
    raw = _raw_receive(sub)
    assert {m["Attributes"]["MessageGroupId"] for m in raw} == {"ada"}
    got = []
    while len(got) < 3:
        batch = await sub.receive(max_messages=10, wait=1)
        assert batch
        got += batch
        for message in batch:
            await sub.ack(message)
    assert [m.id for m in got] == ids and [m.body for m in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
    dead = sub.dead_letters()
    assert isinstance(dead, SQSFifoQueue) and dead.queue_name == sub.dead_letter_name


async def test_redrive_policy_and_dead_letters(moto_server: Any) -> None:
    queue = overcast.open_queue(f"sqs://{_name('q')}?max_attempts=2&visibility_timeout=7")
    assert isinstance(queue, SQSQueue)
    await queue.create()
    attrs = queue.client.get_queue_attributes(QueueUrl=queue.queue_url(), AttributeNames=["All"])["Attributes"]
    policy = json.loads(attrs["RedrivePolicy"])
    assert policy["maxReceiveCount"] == 2 and policy["deadLetterTargetArn"].endswith(f"{queue.queue_name}-dlq")
    assert attrs["VisibilityTimeout"] == "7" and queue.visibility_default() == 7
    # A queue made elsewhere, whose dead-letter queue has another name, is followed by its policy.
    sqs = queue.client
    dlq = sqs.create_queue(QueueName=_name("elsewhere"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    made = _name("made")
    sqs.create_queue(
        QueueName=made, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})}
    )
    other = overcast.open_queue(f"sqs://{made}")
    await other.send({"x": 1})
    first = await other.receive(wait=1)
    await other.nack(first[0])
    assert await other.receive(wait=1) == []
    letters = await other.dead_letters().receive(wait=1)
    assert [m.body for m in letters] == [{"x": 1}] and letters[0].id == first[0].id


async def test_subscription_receives_the_sns_envelope_unwrapped(moto_server: Any) -> None:
    topic = overcast.open_topic(f"sns://{_name('t')}")
    assert isinstance(topic, SNSTopic)
    await topic.create()
    sub = topic.subscription("mail ü/x")
    await sub.create()
    assert sub.queue_name.startswith(topic.topic_name + "-mail__")  # type: ignore[attr-defined]
    sent = await topic.publish({"hello": "world"}, attributes={"ünï": "✓"})
    raw = sub.client.receive_message(QueueUrl=sub.queue_url(), WaitTimeSeconds=1)["Messages"][0]  # type: ignore[attr-defined]
    envelope = json.loads(raw["Body"])
    assert envelope["Type"] == "Notification" and envelope["MessageId"] == sent
    await sub.nack(sub._message(raw))  # type: ignore[attr-defined]
    message = (await sub.receive(wait=1))[0]
    assert (message.id, message.body, message.attributes) == (sent, {"hello": "world"}, {"ünï": "✓"})


def test_a_queue_and_a_topic_of_a_named_account(moto_server: Any) -> None:
    """``account`` (what an ARN in overcast.toml sets): the queue is looked up in that account
    and the topic's ARN is built from it, without asking STS whose credentials these are."""
    name = _name("owned")
    created = SQSQueue(overcast.resources.url.ResourceURL.parse(f"sqs://{name}"), name="q")
    created.sync.create()
    owned = overcast.open_queue(f"sqs://{name}?account=123456789012")  # moto's account
    asked: list[dict[str, Any]] = []
    owned.client.meta.events.register(
        "provide-client-params.sqs.GetQueueUrl", lambda params, **_: asked.append(dict(params))
    )
    owned.sync.send({"n": 1})
    assert [m.body for m in owned.sync.receive(wait=1)] == [{"n": 1}]
    assert asked == [{"QueueName": name, "QueueOwnerAWSAccountId": "123456789012"}]  # looked up once
    topic = overcast.open_topic(f"sns://{name}?account=210987654321&region=eu-west-1")
    assert topic.topic_arn() == f"arn:aws:sns:eu-west-1:210987654321:{name}"
