"""The Google Cloud providers under the conformance suites, on Google's Firestore and Pub/Sub
emulators, fake-gcs-server and the fake Secret Manager (tests/servers/gcp.py)."""

from __future__ import annotations

from pathlib import Path

from ..providers import Case


def _firestore(tmp: Path, name: str) -> str:
    return f"firestore://{name}"


CASES: list[Case] = [
    Case("kv", "firestore", _firestore, server="firestore_emulator", title="Firestore"),
]


def _gcs(tmp: Path, name: str) -> str:
    return f"gs://{name}/some/prefix"


CASES.append(Case("bucket", "gs", _gcs, server="gcs_emulator", title="GCS"))


def _pubsub(tmp: Path, name: str) -> str:
    return f"pubsub://{name}"


CASES.append(Case("queue", "pubsub", _pubsub, server="pubsub_emulator", title="PubSub"))
CASES.append(Case("topic", "pubsub", _pubsub, server="pubsub_emulator", title="PubSub"))
