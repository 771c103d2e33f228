"""Azure Blob storage on Azurite: blob names, block uploads, SAS URLs fetched over HTTP,
and what the raw SDK sees of Overcast's writes."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

import overcast
from overcast.errors import Conflict, InvalidArgument, NotFound
from overcast.providers.azure.blob import AzureBlobStore, decode_name, encode_name
from overcast.testing.conformance.kv import AWKWARD_KEYS
from servers import Server


def _store(prefix: str = "pre/fix", **options: str) -> AzureBlobStore:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    store = overcast.open_bucket(f"azblob://c{uuid.uuid4().hex[:12]}/{prefix}" + (f"?{query}" if query else ""))
    assert isinstance(store, AzureBlobStore)
    store.sync.create()
    return store


def _container(store: AzureBlobStore) -> Any:
    service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
    return service.get_container_client(store.container_name)


def test_blob_names_round_trip_and_keep_key_order() -> None:
    keys = [*AWKWARD_KEYS, "a/./b", "a//b", "trailing/", "end.", "x/../y", "!bang"]
    for key in keys:
        name = encode_name(key)
        assert decode_name(name) == key
        assert all(ord(c) > 0x21 or c == "!" for c in name) and "\\" not in name
        assert "/./" not in f"/{name}/" and "/../" not in f"/{name}/" and not name.endswith(".")
    plain = ["a", "a b", "a!", "a-b", "a/b", "a0", "aZ", "a~", "ü"]
    assert sorted(plain, key=encode_name) == sorted(plain)


def test_objects_are_blobs_under_the_prefix(azurite: Server) -> None:
    store = _store()
    store.sync.put("dir/file.txt", b"hello", content_type="text/plain", metadata={"owner": "zoe"})
    blob = _container(store).get_blob_client("pre/fix/dir/file.txt")
    props = blob.get_blob_properties()
    assert props.content_settings.content_type == "text/plain" and props.metadata == {"owner": "zoe"}
    assert blob.download_blob().readall() == b"hello"


def test_large_puts_go_up_as_blocks(azurite: Server) -> None:
    store = _store(single_put_mb="0.1", block_mb="0.05")
    data = os.urandom(300_000)
    info = store.sync.put("big", data)
    blocks, _ = _container(store).get_blob_client("pre/fix/big").get_block_list("committed")
    assert len(blocks) == 6 and sum(b.size for b in blocks) == len(data) == info.size
    assert store.sync.get("big") == data and store.sync.get("big", start=100_000, end=100_010) == data[100_000:100_010]
    small = store.sync.put("small", b"x" * 1000)
    blocks, _ = _container(store).get_blob_client("pre/fix/small").get_block_list("committed")
    assert blocks == [] and small.size == 1000  # one Put Blob


def test_streams_commit_once_with_their_condition(azurite: Server) -> None:
    store = _store(block_mb="0.05")

    async def chunks(n: int) -> AsyncIterator[bytes]:
        for i in range(n):
            yield bytes([i]) * 40_000

    async def scenario() -> None:
        first = await store.put("s", chunks(5), if_absent=True)
        assert first.size == 200_000
        with pytest.raises(Conflict):
            await store.put("s", chunks(5), if_absent=True)
        with pytest.raises(Conflict):
            await store.put("s", chunks(3), if_etag="0x0")
        await store.put("s", chunks(3), if_etag=first.etag)
        assert await store.get("s") == b"".join([bytes([i]) * 40_000 for i in range(3)])
        streamed = b"".join([c async for c in store.stream("s")])
        assert len(streamed) == 120_000

    asyncio.run(scenario())


def test_both_faces_upload_alike(azurite: Server) -> None:
    """One upload flow for both faces: bytes past 1 MiB (which the async face sends from a
    worker thread) and short streams are one Put Blob; long streams are committed blocks."""
    store = _store(single_put_mb="3", block_mb="2")
    big = os.urandom(2 * 1024 * 1024 + 10)
    long = [os.urandom(1024 * 1024) for _ in range(5)]

    async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async def async_face() -> None:
        await store.put("async-big", big)
        await store.put("async-short", chunks([b"x" * 1000, b"y"]))
        await store.put("async-long", chunks(long))

    asyncio.run(async_face())
    store.sync.put("sync-big", big)
    store.sync.put("sync-short", iter([b"x" * 1000, b"y"]))
    store.sync.put("sync-long", iter(long))
    for face in ("async", "sync"):
        committed = {
            key: _container(store).get_blob_client(f"pre/fix/{face}-{key}").get_block_list("committed")[0]
            for key in ("big", "short", "long")
        }
        assert committed["big"] == [] and committed["short"] == [], face
        assert [block.size for block in committed["long"]] == [2 * 1024 * 1024] * 2 + [1024 * 1024], face
        assert store.sync.get(f"{face}-big") == big and store.sync.get(f"{face}-short") == b"x" * 1000 + b"y"
        assert store.sync.get(f"{face}-long") == b"".join(long)


def test_signed_urls_work_over_http(azurite: Server) -> None:
    store = _store()
    store.sync.put("doc.txt", b"signed", content_type="text/plain")
    url = store.sync.url("doc.txt", expires=timedelta(minutes=5))
    assert "sig=" in url and "AccountKey" not in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"signed"
    put_url = store.sync.url("upload.bin", method="PUT")
    request = urllib.request.Request(put_url, data=b"up", method="PUT", headers={"x-ms-blob-type": "BlockBlob"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    assert store.sync.get("upload.bin") == b"up"
    with pytest.raises(urllib.error.HTTPError) as info:  # a read-only URL cannot write
        urllib.request.urlopen(
            urllib.request.Request(url, data=b"x", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}), timeout=10
        )
    assert info.value.code == 403


def test_errors_name_the_object(azurite: Server) -> None:
    store = _store()
    with pytest.raises(NotFound, match="'absent'"):
        store.sync.get("absent")
    with pytest.raises(NotFound):
        list(store.sync.stream("absent"))
    with pytest.raises(InvalidArgument, match="1024"):
        _store(prefix="p" * 600).sync.put("k" * 500, b"")


def test_a_container_without_prefix(azurite: Server) -> None:
    store = _store(prefix="")
    store.sync.put("top", b"1")
    assert [b.name for b in _container(store).list_blobs()] == ["top"]
    assert [i.key for i in store.sync.list()] == ["top"]


def test_a_missing_container_is_not_found(azurite: Server) -> None:
    store = overcast.open_bucket(f"azblob://never{uuid.uuid4().hex[:8]}")
    with pytest.raises(NotFound):
        store.sync.put("k", b"x")
