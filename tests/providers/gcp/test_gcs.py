"""What is particular to the Cloud Storage blob store, on fake-gcs-server with the real
client: generations as ETags, resumable uploads above the threshold and for streams,
metadata seen by the raw client, and V4 signed URLs from a generated service-account key."""

from __future__ import annotations

import io
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

import overcast
from overcast.errors import ConfigError, Conflict, InvalidArgument
from overcast.providers.gcp.gcs import GCSBlobStore
from overcast.resources import bridge

pytestmark = pytest.mark.usefixtures("gcs_emulator")

SMALL = 256 * 1024


def _bucket(prefix: str = "pre/fix", **options: str) -> GCSBlobStore:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    store = overcast.open_bucket(f"gs://b-{uuid.uuid4().hex[:10]}/{prefix}" + (f"?{query}" if query else ""))
    assert isinstance(store, GCSBlobStore)
    store.sync.create()
    return store


def test_etag_is_the_generation_and_metadata_reaches_the_raw_client() -> None:
    store = _bucket()
    info = store.sync.put("a/b.txt", b"hello", content_type="text/plain", metadata={"owner": "zoe"})
    blob = store.client.bucket(store.bucket_name).get_blob("pre/fix/a/b.txt")
    assert info.etag == str(blob.generation) and blob.metadata == {"owner": "zoe"}
    assert blob.content_type == "text/plain" and info.last_modified is not None
    # what the provider reads from the object resource is what the raw client's properties say
    assert (info.size, info.content_type, info.metadata) == (blob.size, blob.content_type, blob.metadata)
    assert info.last_modified == blob.updated and info.last_modified.tzinfo is not None
    assert store.sync.head("a/b.txt") == info
    with pytest.raises(Conflict):
        store.sync.put("a/b.txt", b"x", if_etag="not-a-generation")


def test_resumable_uploads_above_the_threshold() -> None:
    store = _bucket(resumable_threshold=str(SMALL), chunk_size=str(SMALL))
    data = os.urandom(SMALL * 2 + 1234)
    info = store.sync.put("big", data)
    assert info.size == len(data) and store.sync.get("big") == data
    assert store.sync.get("big", start=SMALL - 3, end=SMALL + 3) == data[SMALL - 3 : SMALL + 3]
    assert b"".join(store.sync.stream("big")) == data
    # a file object streams through a resumable session
    streamed = store.sync.put("file", io.BytesIO(data), if_absent=True)
    assert streamed.size == len(data) and store.sync.get("file") == data
    with pytest.raises(Conflict):
        store.sync.put("file", io.BytesIO(data), if_absent=True)


def test_async_stream_upload_past_the_threshold() -> None:
    store = _bucket(resumable_threshold=str(SMALL), chunk_size=str(SMALL))
    bridge.run_sync(_async_stream_upload(store))


async def _async_stream_upload(store: GCSBlobStore) -> None:
    parts = [os.urandom(100_000) for _ in range(7)]

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    first = await store.put("s", chunks(), metadata={"k": "v"})
    assert first.size == 700_000 and first.metadata == {"k": "v"}
    second = await store.put("s", chunks(), if_etag=first.etag)
    assert second.etag != first.etag
    with pytest.raises(Conflict):
        await store.put("s", chunks(), if_etag=first.etag)
    assert b"".join([c async for c in store.stream("s")]) == b"".join(parts)


def test_ranges_past_the_end() -> None:
    store = _bucket()
    store.sync.put("r", b"0123456789")
    assert store.sync.get("r", start=8, end=100) == b"89"
    assert store.sync.get("r", start=20) == b""
    assert store.sync.get("r", start=3, end=3) == b""


def test_signed_url_is_a_v4_signature_served_by_the_emulator() -> None:
    store = _bucket()
    store.sync.put("u.txt", b"signed")
    url = store.sync.url("u.txt", expires=timedelta(minutes=5))
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}" == os.environ["STORAGE_EMULATOR_HOST"]
    assert parts.path == f"/{store.bucket_name}/pre/fix/u.txt"
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and query["X-Goog-Expires"] == "300"
    assert query["X-Goog-Credential"].startswith("tests@overcast-test.iam.gserviceaccount.com/")
    assert len(query["X-Goog-Signature"]) == 512  # hex of a 2048-bit RSA signature
    with urllib.request.urlopen(url, timeout=5) as response:  # fake-gcs-server does not check signatures
        assert response.read() == b"signed"
    with pytest.raises(InvalidArgument):
        store.sync.url("u.txt", expires=timedelta(days=8))


def test_prefix_leaves_room_in_the_name_limit() -> None:
    store = _bucket(prefix="p" * 1000)
    assert store.limits.max_key_bytes == 1024 - 1001
    with pytest.raises(InvalidArgument):
        store.sync.put("k" * 24, b"")
    with pytest.raises(ConfigError):
        overcast.open_bucket("gs://b/x?chunk_size=1000")
