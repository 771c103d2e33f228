"""Replicated buckets beyond the conformance suite: the replica really holds each write,
deletes are tombstones everywhere, reads fail over, conditional writes and presigned PUTs
are refused where they would be unsafe."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.errors import NotSupported, Unavailable
from overcast.resilience.replicated_blob import ReplicatedBlobStore
from resilience.pairs import replicated_url
from servers import Server, free_port


def test_objects_and_deletes_reach_the_replica(tmp_path: Path) -> None:
    primary, replica = f"file:///{tmp_path}/a", f"file:///{tmp_path}/b"
    bucket: Any = overcast.open_bucket(replicated_url(primary, [replica]))
    bucket.sync.put("avatars/ada.png", b"\x89PNG", content_type="image/png", metadata={"owner": "ada"})
    bucket.sync.put("avatars/bob.png", b"bob")
    asyncio.run(bucket.replicate())
    copy = overcast.open_bucket(replica)
    info = copy.sync.head("avatars/ada.png")
    assert info is not None and info.content_type == "image/png" and info.metadata["owner"] == "ada"
    assert "occlock" in info.metadata and copy.sync.get("avatars/ada.png") == b"\x89PNG"

    assert bucket.sync.delete("avatars/bob.png") is True
    assert bucket.sync.head("avatars/bob.png") is None
    assert [o.key for o in bucket.sync.list("avatars/")] == ["avatars/ada.png"]
    asyncio.run(bucket.replicate())
    tomb = copy.sync.head("avatars/bob.png")  # a marker, so an older write cannot bring it back
    assert tomb is not None and tomb.size == 0 and tomb.metadata.get("ocdeleted") == "1"
    with pytest.raises(NotSupported, match="presigned PUT"):
        bucket.sync.url("avatars/ada.png", method="PUT")
    bucket.close()


def test_reads_and_writes_fail_over_to_the_replica(moto_server: Server, tmp_path: Path) -> None:
    dead = f"s3://nowhere/p?endpoint=http://127.0.0.1:{free_port()}&retries=1"
    bucket: Any = overcast.open_bucket(replicated_url(dead, [f"file:///{tmp_path}/b"], timeout="2s"))
    info = bucket.sync.put("k", b"v")  # the primary refuses connections: the replica takes it
    assert bucket.sync.get("k") == b"v" and info.size == 1
    with pytest.raises(Unavailable, match=r"conditional writes .* refused while failed over"):
        bucket.sync.put("k", b"w", if_etag=info.etag)
    assert [m["breaker"] for m in bucket.health()] == ["open", "closed"]
    bucket.close()


def test_the_table_form_replicates_buckets(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text(
        '[targets.multi]\nbucket.avatars = { primary = "memory://a", replicas = ["memory://b"] }\n'
    )
    app = overcast.App("demo")
    app.use_config(tmp_path / "overcast.toml")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OVERCAST_TARGET", "multi")
        avatars = app.bucket("avatars")
        avatars.sync.put("x", b"1")
        assert isinstance(avatars.provider, ReplicatedBlobStore)
        app.reset()
