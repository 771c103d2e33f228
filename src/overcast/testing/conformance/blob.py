"""The conformance suite of object stores (:class:`overcast.BlobStore`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import ClassVar

import pytest

import overcast
from overcast.errors import Conflict, InvalidArgument, NotFound, NotSupported
from overcast.resources import bridge
from overcast.resources.blob import BlobStore

from .base import ConformanceSuite, in_processes, lacks, requires
from .kv import AWKWARD_KEYS

__all__ = ["BlobStoreSuite"]


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _create_worker(url: str, key: str, who: int) -> str:
    """One of several processes creating ``key`` only if it does not exist."""
    bucket = overcast.open_bucket(url)
    try:
        bucket.sync.put(key, b"writer %d" % who, if_absent=True)
    except Conflict:
        return "conflict"
    finally:
        bucket.close()
    return "won"


class BlobStoreSuite(ConformanceSuite):
    """Every semantic of :class:`~overcast.BlobStore`. ``make_url`` gives the URL of a new, empty store."""

    kind_capabilities: ClassVar[frozenset[str]] = frozenset({"url", "signed_get", "conditional", "multiprocess"})
    processes: ClassVar[int] = 4

    @pytest.fixture
    def make_url(self) -> Callable[[], str]:
        raise NotImplementedError("provide a make_url fixture: () -> URL of a new empty object store")

    @pytest.fixture
    def open_store(self) -> Callable[[str], BlobStore]:
        return overcast.open_bucket

    @pytest.fixture
    def bucket_url(self, make_url: Callable[[], str]) -> str:
        return make_url()

    @pytest.fixture
    def bucket(self, bucket_url: str, open_store: Callable[[str], BlobStore]) -> Iterator[BlobStore]:
        bucket = open_store(bucket_url)
        bucket.sync.create()
        yield bucket
        bucket.close()

    def test_capabilities(self, bucket: BlobStore) -> None:
        self.check_capabilities(bucket)

    async def test_bytes_round_trip(self, bucket: BlobStore) -> None:
        data = os.urandom(1000) + b"\x00\xff"
        info = await bucket.put("dir/file.bin", data)
        assert (info.key, info.size) == ("dir/file.bin", len(data)) and info.etag
        assert await bucket.get("dir/file.bin") == data
        head = await bucket.head("dir/file.bin")
        assert head is not None and (head.size, head.etag) == (len(data), info.etag)
        assert head.content_type == "application/octet-stream" and head.metadata == {}
        assert await bucket.delete("dir/file.bin") is True
        assert await bucket.head("dir/file.bin") is None
        assert await bucket.delete("dir/file.bin") is False
        with pytest.raises(NotFound):
            await bucket.get("dir/file.bin")

    async def test_overwrite_changes_the_etag(self, bucket: BlobStore) -> None:
        first = await bucket.put("k", b"one")
        second = await bucket.put("k", b"two!")
        assert first.etag != second.etag and second.size == 4
        head = await bucket.head("k")
        assert head is not None and head.etag == second.etag
        assert await bucket.get("k") == b"two!"

    async def test_empty_object(self, bucket: BlobStore) -> None:
        info = await bucket.put("empty", b"")
        assert info.size == 0
        assert await bucket.get("empty") == b""
        assert b"".join([chunk async for chunk in bucket.stream("empty")]) == b""

    def test_bytes_round_trip_sync(self, bucket: BlobStore) -> None:
        b = bucket.sync
        info = b.put("k", bytearray(b"hello"), content_type="text/plain")
        assert b.get("k") == b"hello"
        head = b.head("k")
        assert head is not None and head.etag == info.etag and head.content_type == "text/plain"
        assert b.get("k", start=1, end=3) == b"el"
        assert b"".join(b.stream("k")) == b"hello"
        b.put("k2", iter([b"a", b"b", b"c"]))
        assert b.get("k2") == b"abc"
        assert b.delete("k") is True and b.head("k") is None
        with pytest.raises(NotFound):
            b.get("k")

    async def test_streams(self, bucket: BlobStore) -> None:
        parts = [os.urandom(size) for size in (1, 70_000, 0, 3, bucket.limits.chunk_size + 5)]
        info = await bucket.put("stream", _chunks(parts), content_type="application/x-test")
        whole = b"".join(parts)
        assert info.size == len(whole)
        assert b"".join([chunk async for chunk in bucket.stream("stream")]) == whole
        assert await bucket.get("stream") == whole
        with pytest.raises(NotFound):
            async for _ in bucket.stream("absent"):
                pass

    async def test_range_reads(self, bucket: BlobStore) -> None:
        data = bytes(range(256)) * 4
        await bucket.put("r", data)
        for start, end in ((0, 10), (10, 20), (1000, None), (None, 5), (5, 5), (1020, 5000), (2000, None)):
            assert await bucket.get("r", start=start, end=end) == data[start:end], (start, end)
        with pytest.raises(InvalidArgument):
            await bucket.get("r", start=-1)
        with pytest.raises(InvalidArgument):
            await bucket.get("r", start=10, end=5)

    async def test_content_type_and_metadata(self, bucket: BlobStore) -> None:
        meta = {"owner": "zoe", "x_trace_1": "abc def"}
        info = await bucket.put("m", b"{}", content_type="application/json; charset=utf-8", metadata=meta)
        assert info.content_type == "application/json; charset=utf-8" and info.metadata == meta
        head = await bucket.head("m")
        assert head is not None and head.metadata == meta and head.content_type == "application/json; charset=utf-8"
        assert head.last_modified is None or head.last_modified.tzinfo is not None
        await bucket.put("m", b"[]")
        head = await bucket.head("m")
        assert head is not None and head.metadata == {} and head.content_type == "application/octet-stream"

    @pytest.mark.parametrize(
        "metadata",
        [{"Upper": "v"}, {"1digit": "v"}, {"dash-name": "v"}, {"k": "ü"}, {"k": "line\nbreak"}, {"k": 1}],
        ids=["upper", "digit", "dash", "non-ascii", "newline", "not-str"],
    )
    async def test_metadata_validation(self, bucket: BlobStore, metadata: dict[str, str]) -> None:
        with pytest.raises(InvalidArgument) as info:
            await bucket.put("bad-meta", b"x", metadata=metadata)
        assert "'bad-meta'" in str(info.value)
        assert await bucket.head("bad-meta") is None

    async def test_metadata_size_limit(self, bucket: BlobStore) -> None:
        limit = bucket.limits.max_metadata_bytes
        await bucket.put("ok", b"x", metadata={"k": "v" * (limit - 1)})
        with pytest.raises(InvalidArgument) as info:
            await bucket.put("big", b"x", metadata={"k": "v" * limit})
        assert str(limit) in str(info.value)
        assert await bucket.head("big") is None

    async def test_list_with_prefix_and_continuation(self, bucket: BlobStore) -> None:
        keys = [f"photos/{i:03}.jpg" for i in range(23)]
        for key in keys:
            await bucket.put(key, key.encode())
        await bucket.put("photos", b"")
        await bucket.put("photosx/1", b"")
        await bucket.put("zzz", b"")
        listed = [info async for info in bucket.list("photos/")]
        assert [info.key for info in listed] == keys
        assert all(info.size == len(info.key) for info in listed)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await bucket.page("photos/", limit=5, cursor=cursor)
            assert len(page.objects) <= 5
            seen += [info.key for info in page.objects]
            if page.cursor is None:
                break
            cursor = page.cursor
        assert seen == keys
        everything = [info.key for info in bucket.sync.list()]
        assert everything == sorted(everything) and len(everything) == 26
        assert [info async for info in bucket.list("nothing/")] == []

    async def test_awkward_keys(self, bucket: BlobStore) -> None:
        usable = [key for key in AWKWARD_KEYS if key not in (".", "..")] + ["a/./b", "a//b", "trailing/"]
        for i, key in enumerate(usable):
            await bucket.put(key, str(i).encode())
        for i, key in enumerate(usable):
            assert await bucket.get(key) == str(i).encode(), key
        listed = sorted([info.key async for info in bucket.list()])
        assert listed == sorted(usable)
        long_key = "é" * (bucket.limits.max_key_bytes // 2)
        await bucket.put(long_key, b"long")
        assert await bucket.get(long_key) == b"long"
        with pytest.raises(InvalidArgument):
            await bucket.put(long_key + "x", b"long")
        for key in ("", "\ud800"):
            with pytest.raises(InvalidArgument):
                await bucket.put(key, b"x")

    @requires("conditional")
    async def test_create_only_and_etag_conditional_writes(self, bucket: BlobStore) -> None:
        first = await bucket.put("c", b"one", if_absent=True)
        with pytest.raises(Conflict):
            await bucket.put("c", b"two", if_absent=True)
        second = await bucket.put("c", b"two", if_etag=first.etag)
        assert second.etag != first.etag
        with pytest.raises(Conflict):
            await bucket.put("c", b"three", if_etag=first.etag)
        with pytest.raises(Conflict):
            bucket.sync.put("c", b"three", if_etag=first.etag)
        assert await bucket.get("c") == b"two"
        with pytest.raises(Conflict):
            await bucket.put("absent", b"x", if_etag=second.etag)
        assert await bucket.head("absent") is None
        with pytest.raises(InvalidArgument):
            await bucket.put("c", b"x", if_absent=True, if_etag=second.etag)
        streamed = await bucket.put("s", _chunks([b"a", b"b"]), if_absent=True)
        with pytest.raises(Conflict):
            await bucket.put("s", _chunks([b"c"]), if_absent=True)
        assert await bucket.get("s") == b"ab" and streamed.size == 2

    @requires("conditional", "multiprocess")
    def test_create_only_race_between_processes(self, bucket: BlobStore, bucket_url: str) -> None:
        outcomes = in_processes(_create_worker, [(bucket_url, "race", who) for who in range(self.processes)])
        assert sorted(outcomes) == ["conflict"] * (self.processes - 1) + ["won"], outcomes
        winner = outcomes.index("won")
        assert bucket.sync.get("race") == b"writer %d" % winner

    @lacks("conditional")
    async def test_conditional_writes_not_supported(self, bucket: BlobStore) -> None:
        with pytest.raises(NotSupported):
            await bucket.put("c", b"one", if_absent=True)

    @requires("url")
    async def test_signed_url(self, bucket: BlobStore) -> None:
        await bucket.put("u", b"x")
        url = await bucket.url("u", expires=timedelta(minutes=5))
        assert isinstance(url, str) and "://" in url
        put_url = bucket.sync.url("u", method="PUT")
        assert isinstance(put_url, str) and "://" in put_url

    @lacks("url")
    async def test_signed_url_not_supported(self, bucket: BlobStore) -> None:
        await bucket.put("u", b"x")
        with pytest.raises(NotSupported):
            await bucket.url("u", method="PUT")
        if bucket.supports("signed_get"):  # download links only (a replicated bucket: a PUT would bypass its log)
            assert "://" in await bucket.url("u") and "://" in bucket.sync.url("u")
            return
        with pytest.raises(NotSupported):
            await bucket.url("u")
        with pytest.raises(NotSupported):
            bucket.sync.url("u")

    async def test_url_method_is_checked(self, bucket: BlobStore) -> None:
        with pytest.raises(InvalidArgument):
            await bucket.url("u", method="DELETE")

    def test_create_is_idempotent(self, bucket: BlobStore) -> None:
        bucket.sync.put("k", b"v")
        bridge.run_sync(bucket.create())
        assert bucket.sync.get("k") == b"v"
