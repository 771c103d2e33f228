"""End to end on Google's emulators: ``overcast run`` serves the users example (examples/users)
in a real uvicorn process on the ``gcp`` target, as a Cloud Run container would; Firestore,
Cloud Storage (fake-gcs-server) and Pub/Sub (the emulator) behind it through the Overcast
providers; a real push subscription on the Pub/Sub emulator delivers each signup to the
server over HTTP, and the subscriber's file lands in the bucket."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloud_run_support import free_port, wait_http

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "users"


@pytest.fixture
def served(
    tmp_path: Path, firestore_emulator: Any, pubsub_emulator: Any, gcs_emulator: Any
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """The example copied to a fresh folder, served by ``overcast run`` on target gcp; (base URL, env, log)."""
    folder = tmp_path / "users"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "OVERCAST_TARGET": "gcp",
        # names of this run (the emulators are shared by the session)
        "OVERCAST_KV_USERS": f"firestore://users-{suffix}",
        "OVERCAST_BUCKET_WELCOME": f"gs://welcome-{suffix}",
        "OVERCAST_TOPIC_SIGNUPS": f"pubsub://signups-{suffix}",
        "OVERCAST_CACHE_USERS_CACHE": "memory://users-cache",  # Momento on gcp; not under test here
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("OVERCAST_GCP_PUSH_AUDIENCE", None)
    env["OVERCAST_EVENTS_VERIFY"] = "off"  # the emulator pushes without a token: a private service
    done = subprocess.run(
        [sys.executable, "-m", "overcast", "provision", ".", "--target", "gcp"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "overcast", "run", "--host", "127.0.0.1"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/docs")
        yield base, env, log
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_users_example_on_cloud_run_with_a_real_push_subscription(served: Any) -> None:
    from google.cloud import pubsub_v1, storage

    base, env, log = served
    project = env["GOOGLE_CLOUD_PROJECT"]
    topic_id = env["OVERCAST_TOPIC_SIGNUPS"].removeprefix("pubsub://")
    bucket = env["OVERCAST_BUCKET_WELCOME"].removeprefix("gs://")

    # the subscription `overcast provision` created for send_welcome (pulled by workers),
    # switched to push as a deploy does: deliveries reach the bare endpoint, and the
    # handler is found from the subscription's name as the provider gives it
    subscriber = pubsub_v1.SubscriberClient()
    push_path = subscriber.subscription_path(project, f"{topic_id}.send_welcome")
    subscriber.modify_push_config(
        request={"subscription": push_path, "push_config": {"push_endpoint": f"{base}/_overcast/pubsub"}}
    )
    try:
        reply = httpx.post(base + "/users", json={"id": "ada", "name": "Ada", "email": "ada@example.com"}, timeout=30)
        assert reply.status_code == 201, reply.text
        assert httpx.get(base + "/users/ada", timeout=10).json()["name"] == "Ada"
        # the user is in Firestore, read back through the app
        assert httpx.get(base + "/users/nobody", timeout=10).status_code == 404

        blob = storage.Client(project=project).bucket(bucket).blob("welcome/ada.txt")
        deadline = time.monotonic() + 30
        while not blob.exists():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert blob.download_as_text() == "Welcome, Ada! Your account ada is ready.\n"
    finally:
        subscriber.modify_push_config(request={"subscription": push_path, "push_config": {}})
        subscriber.close()


def test_a_failing_push_is_redelivered(served: Any) -> None:
    """The handler raises on a message that is not a user: 500, and the emulator pushes it again."""
    from google.cloud import pubsub_v1

    base, env, log = served
    project = env["GOOGLE_CLOUD_PROJECT"]
    topic_id = env["OVERCAST_TOPIC_SIGNUPS"].removeprefix("pubsub://")
    subscriber = pubsub_v1.SubscriberClient()
    push_path = subscriber.subscription_path(project, f"push-fail-{topic_id}")
    subscriber.create_subscription(
        request={
            "name": push_path,
            "topic": f"projects/{project}/topics/{topic_id}",
            "push_config": {"push_endpoint": f"{base}/_overcast/pubsub/signups/send_welcome"},
            "ack_deadline_seconds": 10,
        }
    )
    publisher = pubsub_v1.PublisherClient()
    try:
        publisher.publish(f"projects/{project}/topics/{topic_id}", b'"not a user"').result(timeout=30)
        deadline = time.monotonic() + 40
        while log.read_text().count("send_welcome failed on message") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        subscriber.delete_subscription(request={"subscription": push_path})
        subscriber.close()
