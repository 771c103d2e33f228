"""The Google Cloud providers against the raw google-cloud clients on the same emulators, in one run.

Starts Google's Firestore emulator and fake-gcs-server (through the tests' own starters).
Each row does the same work on both sides with the same client object:

- Firestore get: ``kv.sync.get`` against ``DocumentReference.get`` plus decoding the JSON
  field; put: ``kv.sync.put`` against ``DocumentReference.set`` of the same fields;
- Cloud Storage put: ``bucket.sync.put`` of 4 KiB against ``Blob.upload_from_string``;
  get: ``bucket.sync.get`` against ``Blob.download_as_bytes``;
- cold import, in fresh interpreters (best of several): ``import overcast`` and the four
  gcp provider modules against importing the four google-cloud clients they use.

Each figure is the best of many interleaved rounds (contention on a shared machine only
ever adds time). Goals: provider rows within 1.05x; cold import within 1.1x.

    .venv/bin/python benchmarks/gcp_providers.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, per_op_us, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import overcast
from overcast.providers.gcp.firestore import FirestoreKeyValueStore
from overcast.providers.gcp.gcs import GCSBlobStore
from overcast.resources.versions import new_version
from servers.gcp import start_firestore, start_gcs

DOC = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
BLOB = os.urandom(4096)

OURS_IMPORT = (
    "import overcast; import overcast.providers.gcp.firestore, overcast.providers.gcp.gcs, "
    "overcast.providers.gcp.pubsub, overcast.providers.gcp.secrets; "
    "from google.cloud import firestore, storage, pubsub_v1, secretmanager"
)
RAW_IMPORT = "from google.cloud import firestore, storage, pubsub_v1, secretmanager"


def cold_ms(code: str) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return (time.perf_counter() - start) * 1e3

    return run


def main() -> None:
    args = arguments(__doc__ or "")
    n = 50 if args.quick else 200
    rounds = 3 if args.quick else 15
    servers = [start_firestore(), start_gcs()]
    try:
        for server in servers:
            server.apply_env()
        kv = overcast.open_kv(f"firestore://bench-{uuid.uuid4().hex[:8]}")
        assert isinstance(kv, FirestoreKeyValueStore)
        raw_doc = kv.collection.document("kraw")
        kv.sync.put("k", DOC)
        raw_doc.set({"d": json.dumps(DOC, separators=(",", ":")), "v": new_version()})

        def raw_get() -> Any:
            snapshot = raw_doc.get()
            return json.loads(snapshot.to_dict()["d"])

        def raw_put() -> Any:
            return raw_doc.set({"d": json.dumps(DOC, separators=(",", ":")), "v": new_version()})

        bucket = overcast.open_bucket(f"gs://bench-{uuid.uuid4().hex[:8]}")
        assert isinstance(bucket, GCSBlobStore)
        bucket.sync.create()
        raw_blob = bucket.bucket.blob("raw")
        bucket.sync.put("k", BLOB)
        raw_blob.upload_from_string(BLOB, content_type="application/octet-stream")

        rows = []
        for label, ours_op, raw_op in (
            ("Firestore get", lambda: kv.sync.get("k"), raw_get),
            ("Firestore put", lambda: kv.sync.put("k", DOC), raw_put),
            (
                "GCS put 4 KiB",
                lambda: bucket.sync.put("k", BLOB),
                lambda: raw_blob.upload_from_string(BLOB, content_type="application/octet-stream"),
            ),
            ("GCS get 4 KiB", lambda: bucket.sync.get("k"), lambda: raw_blob.download_as_bytes()),
        ):
            ours, base = Result(label, "us"), Result(label, "us")
            # the emulators are JVMs (and a Go server): warm both paths until their JIT settles
            for _ in range(3):
                per_op_us(n, ours_op)()
                per_op_us(n, raw_op)()
            interleave(rounds, (ours, per_op_us(n, ours_op)), (base, per_op_us(n, raw_op)))
            # the best round of each: the machine is shared, and contention only adds time
            ours.samples, base.samples = [min(ours.samples)], [min(base.samples)]
            rows.append((label + " (sync face)", ours, base, "<= 1.05x"))

        ours_import, raw_import = Result("import", "ms"), Result("import", "ms")
        interleave(3 if args.quick else 7, (ours_import, cold_ms(OURS_IMPORT)), (raw_import, cold_ms(RAW_IMPORT)))
        # best of the rounds: the least disturbed start-up of each
        ours_import.samples = [min(ours_import.samples)]
        raw_import.samples = [min(raw_import.samples)]
        rows.append(("cold import: gcp modules + clients", ours_import, raw_import, "<= 1.1x"))
        report("Google Cloud providers against the raw google-cloud clients (same emulators)", rows)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
