"""What is particular to the file blob store: an ordinary folder (keys as paths, bytes as they
are, metadata in sidecars), keys that cannot be paths, the old layout, atomic replace, locks
across processes.

ETags, conditions, ranges, metadata and listing rules are in the conformance suite.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import overcast
from overcast.errors import Conflict, NotSupported, ProviderError
from overcast.providers.local import files
from overcast.providers.local.files import FileBlobStore
from overcast.resources.blob import BlobLimits

AWKWARD_KEYS = ["../x", "../../etc/passwd", "/abs", "..", ".", "a/../../y", "~41", "a\\b", ".overcast", "x.o"]


class _SmallChunks(FileBlobStore):
    limits: ClassVar[BlobLimits] = BlobLimits(chunk_size=4)


def _url(path: Path) -> str:
    return f"file://{path}"  # absolute: file:///tmp/...


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


def _slow_writer(url: str, key: str, started: Any) -> None:
    """Stream an object that never finishes, signalling once part of it is on disk."""
    store = FileBlobStore(url)

    def chunks() -> Iterator[bytes]:
        yield b"N" * 65536
        started.set()
        while True:
            time.sleep(0.05)
            yield b"N" * 65536

    store.sync.put(key, chunks())


def _increment_in_process(url: str, key: str, times: int, start: Any, results: Any) -> None:
    store = FileBlobStore(url)
    start.wait()
    conflicts = 0
    for _ in range(times):
        while True:
            info = store.sync.head(key)
            try:
                if info is None:
                    store.sync.put(key, b"1", if_absent=True)
                else:
                    store.sync.put(key, str(int(store.sync.get(key)) + 1).encode(), if_etag=info.etag)
                break
            except Conflict:
                conflicts += 1
    results.put(conflicts)


def test_opened_by_the_registry_and_created_on_first_write(tmp_path: Path) -> None:
    bucket = overcast.open_bucket("file://data/avatars", base_dir=tmp_path)
    assert isinstance(bucket, FileBlobStore)
    assert bucket.capabilities == {"conditional", "multiprocess"}
    assert bucket.root == tmp_path / "data" / "avatars"
    assert bucket.sync.head("k") is None
    assert list(bucket.sync.list()) == []
    bucket.sync.put("k", b"v")
    assert bucket.root.is_dir()
    bucket.sync.create()
    bucket.sync.create()
    assert bucket.sync.get("k") == b"v"


def test_url_is_not_supported(tmp_path: Path) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    bucket.sync.put("k", b"v")
    assert not bucket.supports("url")
    with pytest.raises(NotSupported):
        bucket.sync.url("k")


def test_keys_that_are_prefixes_of_other_keys(tmp_path: Path) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    for key in ["a", "a/b", "a/b/c", "a/", "ab"]:
        bucket.sync.put(key, key.encode())
    for key in ["a", "a/b", "a/b/c", "a/", "ab"]:
        assert bucket.sync.get(key) == key.encode()
    assert [info.key for info in bucket.sync.list("a/")] == ["a/", "a/b", "a/b/c"]
    assert bucket.sync.delete("a/b")
    assert bucket.sync.get("a/b/c") == b"a/b/c"


def test_awkward_keys_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "inner" / "b"
    bucket = FileBlobStore(_url(root))
    for key in AWKWARD_KEYS:
        bucket.sync.put(key, key.encode())
    assert _files_under(tmp_path) == _files_under(root)
    in_tree = {p.relative_to(root).as_posix() for p in _files_under(root) if ".overcast" not in p.parts}
    assert in_tree == {"~41", "a\\b", "x.o"}  # the keys that are paths; the others are escaped
    assert len(list((root / ".overcast" / "keys").iterdir())) == len(AWKWARD_KEYS) - 3
    for key in AWKWARD_KEYS:
        assert bucket.sync.get(key) == key.encode()
    assert [info.key for info in bucket.sync.list()] == sorted(AWKWARD_KEYS)


def test_the_folder_is_keys_as_paths_and_bytes_as_they_are(tmp_path: Path) -> None:
    root = tmp_path / "b"
    bucket = FileBlobStore(_url(root))
    bucket.sync.put("welcome/ada.txt", b"Welcome, Ada!\n", content_type="text/plain", metadata={"lang": "en"})
    bucket.sync.put("photos/2024/cat.jpg", b"\xff\xd8 jpeg")
    assert sorted(p.name for p in root.iterdir()) == [".overcast", "photos", "welcome"]
    assert (root / "welcome" / "ada.txt").read_bytes() == b"Welcome, Ada!\n"  # what `cat` prints
    assert (root / "photos" / "2024" / "cat.jpg").read_bytes() == b"\xff\xd8 jpeg"
    sidecar = json.loads((root / ".overcast" / "meta" / "welcome" / "ada.txt.json").read_text())
    assert sidecar["key"] == "welcome/ada.txt"
    assert sidecar["versions"][0]["content_type"] == "text/plain"
    assert sidecar["versions"][0]["metadata"] == {"lang": "en"}
    assert bucket.sync.delete("photos/2024/cat.jpg")
    assert not (root / "photos").exists()  # folders left empty go, as prefixes do in S3
    assert not (root / ".overcast" / "meta" / "photos").exists()


def test_files_another_program_writes_are_objects(tmp_path: Path) -> None:
    root = tmp_path / "b"
    bucket = FileBlobStore(_url(root))
    bucket.sync.create()
    (root / "docs").mkdir()
    (root / "docs" / "README.txt").write_text("hello")
    (root / "empty-folder").mkdir()
    info = bucket.sync.head("docs/README.txt")
    assert info is not None and info.size == 5 and info.content_type == "text/plain"
    assert info.etag == hashlib.md5(b"hello").hexdigest()
    assert [i.key for i in bucket.sync.list()] == ["docs/README.txt"]
    bucket.sync.put("docs/README.txt", b"again", if_etag=info.etag)
    (root / "docs" / "README.txt").write_text("edited by hand")  # the sidecar no longer describes it
    edited = bucket.sync.head("docs/README.txt")
    assert edited is not None and edited.etag == hashlib.md5(b"edited by hand").hexdigest()


def test_a_key_moves_between_the_tree_and_the_escaped_folder(tmp_path: Path) -> None:
    root = tmp_path / "b"
    bucket = FileBlobStore(_url(root))
    bucket.sync.put("a/b", b"inner")
    bucket.sync.put("a", b"outer")  # a folder is at a: the key is escaped
    assert (root / "a").is_dir() and bucket.sync.get("a") == b"outer"
    assert [i.key for i in bucket.sync.list()] == ["a", "a/b"]
    assert bucket.sync.delete("a/b")
    bucket.sync.put("a", b"outer again")  # the folder went: now a plain file, the escaped copy gone
    assert (root / "a").read_bytes() == b"outer again"
    assert not any((root / ".overcast" / "keys").glob("*"))
    bucket.sync.put("a/c", b"under a file")  # a is a file: a/c is escaped
    assert sorted((i.key, bucket.sync.get(i.key)) for i in bucket.sync.list()) == [
        ("a", b"outer again"),
        ("a/c", b"under a file"),
    ]


def test_a_crash_between_the_sidecar_and_the_file_leaves_the_old_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    old = bucket.sync.put("k", b"old", content_type="text/plain", metadata={"v": "1"})
    real_replace = os.replace

    def crash(source: Any, target: Any) -> None:
        if Path(target) == tmp_path / "b" / "k":
            raise KeyboardInterrupt  # the process dies after the sidecar was replaced
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        bucket.sync.put("k", b"new", content_type="image/png", metadata={"v": "2"})
    monkeypatch.undo()
    assert bucket.sync.get("k") == b"old"
    assert bucket.sync.head("k") == old  # its content type and metadata too


def test_a_folder_in_the_old_layout_is_refused_then_converted_by_create(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    for key, data in (("welcome/ada.txt", b"Hi Ada"), ("../x", b"escaped")):
        trailer = json.dumps(
            {
                "key": key,
                "size": len(data),
                "etag": hashlib.md5(data).hexdigest(),
                "content_type": "text/plain",
                "metadata": {"m": "1"},
                "modified": 1.0,
            }
        ).encode()
        name = "".join(c if c.isalnum() or c in "._-" else f"~{ord(c):02x}" for c in key)
        (root / f"{name}.o").write_bytes(data + trailer + struct.pack(">Q", len(trailer)) + b"OVCBLOB1")
    bucket = FileBlobStore(_url(root))
    with pytest.raises(ProviderError, match=r"old layout .*`overcast provision`"):
        bucket.sync.get("welcome/ada.txt")
    bucket.sync.create()
    assert (root / "welcome" / "ada.txt").read_bytes() == b"Hi Ada"
    assert not list(root.glob("*.o"))
    info = FileBlobStore(_url(root)).sync.head("../x")
    assert info is not None and (info.content_type, info.metadata) == ("text/plain", {"m": "1"})
    assert FileBlobStore(_url(root)).sync.get("../x") == b"escaped"


def test_keys_longer_than_a_file_name(tmp_path: Path) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    long_a, long_b = "é" * 500 + "a", "é" * 500 + "b"
    bucket.sync.put(long_a, b"a")
    bucket.sync.put(long_b, b"b")
    bucket.sync.put("é", b"short")
    assert all(len(p.name.encode()) <= 255 for p in (tmp_path / "b").rglob("*"))
    assert bucket.sync.get(long_a) == b"a" and bucket.sync.get(long_b) == b"b"
    assert [i.key for i in bucket.sync.list("é" * 300)] == [long_a, long_b]
    assert [i.key for i in bucket.sync.list("é")] == ["é", long_a, long_b]


def test_a_stream_reads_one_version_while_the_object_is_replaced(tmp_path: Path) -> None:
    bucket = _SmallChunks(_url(tmp_path / "b"))
    bucket.sync.put("k", b"old-old-old-old")
    chunks = bucket.sync.stream("k")
    first = next(chunks)
    bucket.sync.put("k", b"NEW")
    assert first + b"".join(chunks) == b"old-old-old-old"
    assert bucket.sync.get("k") == b"NEW"


def test_streamed_puts_write_chunk_by_chunk(tmp_path: Path) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    tmp = tmp_path / "b" / ".overcast" / "tmp"
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(4):
            temps = list(tmp.iterdir()) if tmp.exists() else []
            seen.append(sum(p.stat().st_size for p in temps))
            yield bytes([i]) * 100_000

    info = bucket.sync.put("k", chunks())
    assert seen[3] >= 200_000  # on disk before the stream ends, not held in memory
    assert info.size == 400_000
    assert list(tmp.iterdir()) == []

    async def agen() -> Any:
        for i in range(3):
            yield bytes([i]) * 10

    async def put_async() -> bytes:
        await bucket.put("a", agen())
        return b"".join([chunk async for chunk in bucket.stream("a")])

    assert asyncio.run(put_async()) == b"\x00" * 10 + b"\x01" * 10 + b"\x02" * 10


def test_a_failed_stream_leaves_the_old_object_and_no_temp_file(tmp_path: Path) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    bucket.sync.put("k", b"old")

    def chunks() -> Iterator[bytes]:
        yield b"new"
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        bucket.sync.put("k", chunks())
    assert bucket.sync.get("k") == b"old"
    assert list((tmp_path / "b" / ".overcast" / "tmp").iterdir()) == []


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_the_old_object(tmp_path: Path) -> None:
    url = _url(tmp_path / "b")
    bucket = FileBlobStore(url)
    old = bucket.sync.put("k", b"old content")
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_slow_writer, args=(url, "k", started))
    proc.start()
    try:
        assert started.wait(timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
        proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    assert bucket.sync.get("k") == b"old content"
    assert bucket.sync.head("k") == old
    assert [info.key for info in bucket.sync.list()] == ["k"]
    temps = list((tmp_path / "b" / ".overcast" / "tmp").iterdir())
    assert len(temps) == 1 and temps[0].stat().st_size >= 65536  # the partial write, never listed
    bucket.sync.create()
    assert temps[0].exists()  # a recent temp file may belong to a live writer
    os.utime(temps[0], (time.time() - 3 * 86400, time.time() - 3 * 86400))
    bucket.sync.create()
    assert not temps[0].exists()


@pytest.mark.slow
def test_processes_increment_exactly_with_etags(tmp_path: Path) -> None:
    url = _url(tmp_path / "b")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [ctx.Process(target=_increment_in_process, args=(url, "count", 40, start, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    conflicts = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert FileBlobStore(url).sync.get("count") == b"80"
    assert all(isinstance(n, int) for n in conflicts)


def test_threads_racing_on_one_etag_have_one_winner(tmp_path: Path) -> None:
    bucket = FileBlobStore(_url(tmp_path / "b"))
    base = bucket.sync.put("k", b"base")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            bucket.sync.put("k", f"writer {i}".encode(), if_etag=base.etag)
            outcomes.append("won")
        except Conflict:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert bucket.sync.get("k").startswith(b"writer ")
