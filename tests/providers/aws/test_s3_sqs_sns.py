"""S3, SQS and SNS specifics the suites do not see: multipart uploads, presigned URLs fetched
over HTTP, FIFO order and deduplication, redrive policies, the SNS envelope."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import overcast
from overcast.errors import Conflict, NotSupported
from overcast.providers.aws.s3 import S3BlobStore
from overcast.providers.aws.sns import SNSTopic
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
    with pytest.raises(NotSupported):
        await queue.send({"late": True}, delay=5)
    dead = queue.dead_letters()
    assert dead.queue_name.endswith("-dlq.fifo") and isinstance(dead, SQSFifoQueue)


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
