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


def _gsm(tmp: Path, name: str) -> str:
    # Secret Manager has no emulator: a fake gRPC server speaking its API (named a fake)
    from providers.gcp.fake_secret_manager import running_fake

    return f"gsm://{name}?project=overcast-test&emulator={running_fake().address}"


def _set_gsm(url: str, name: str, value: str) -> None:
    from overcast.providers.gcp.secrets import SecretManagerSecretStore

    SecretManagerSecretStore(url).put(name, value)


CASES.append(Case("secret", "gsm", _gsm, set_secret=_set_gsm, title="SecretManagerFake"))
