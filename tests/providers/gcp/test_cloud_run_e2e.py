"""End to end on the Pub/Sub emulator: ``overcast run`` serves an app on the ``gcp`` target in a
real uvicorn process, as a Cloud Run container would, and a real push subscription on the
emulator delivers to it over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloud_run_support import Recorder, envelope, free_port, post_json, wait_http

PUSH_APP = """
import json
import os
from pathlib import Path

import overcast

app = overcast.App("pushdemo")
jobs = app.topic("jobs")


@app.subscribe(jobs, name="work")
async def work(event: overcast.CloudEvent) -> None:
    if event.data == "boom":
        raise RuntimeError("boom")
    record = {"id": event.id, "data": event.data, "attempts": event.extensions["attempts"], "type": event.type}
    (Path(os.environ["OUT_DIR"]) / f"{event.id}.json").write_text(json.dumps(record))


async def api(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


app.http(api)
"""

PUSH_CONFIG = """\
[app]
entry = "app:app"

[targets.gcp]
topic.jobs = "pubsub://pushdemo-jobs-{suffix}"
"""


def test_emulator_push_subscription_reaches_overcast_run(tmp_path: Path, pubsub_emulator: Any) -> None:
    """A push subscription named as the provider names it (``<topic>-<subscription>``), to the
    bare ``/_overcast/pubsub`` endpoint: the handler is found from the subscription; a failure
    answers 500 and the emulator pushes it again (the emulator sends no ``deliveryAttempt``)."""
    from google.cloud import pubsub_v1

    suffix = uuid.uuid4().hex[:8]
    (tmp_path / "app.py").write_text(PUSH_APP)
    (tmp_path / "overcast.toml").write_text(PUSH_CONFIG.format(suffix=suffix))
    out = tmp_path / "out"
    out.mkdir()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "OVERCAST_TARGET": "gcp", "OUT_DIR": str(out)}
    env.pop("OVERCAST_GCP_PUSH_AUDIENCE", None)
    env["OVERCAST_EVENTS_VERIFY"] = "off"  # the emulator pushes without a token: a private service
    project = env["GOOGLE_CLOUD_PROJECT"]
    topic = f"projects/{project}/topics/pushdemo-jobs-{suffix}"
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    publisher.create_topic(request={"name": topic})
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "overcast", "run", "--host", "127.0.0.1"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sub = subscriber.subscription_path(project, f"pushdemo-jobs-{suffix}-work")
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        subscriber.create_subscription(
            request={
                "name": sub,
                "topic": topic,
                "push_config": {"push_endpoint": f"http://127.0.0.1:{port}/_overcast/pubsub"},
                "ack_deadline_seconds": 10,
            }
        )
        ids = [
            publisher.publish(topic, b'{"n": 1}', origin="test").result(timeout=30),
            publisher.publish(topic, b'"boom"').result(timeout=30),
        ]
        deadline = time.monotonic() + 40
        while not (out / f"{ids[0]}.json").exists() or log.read_text().count("work failed on message") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        record = json.loads((out / f"{ids[0]}.json").read_text())
        assert record == {"id": ids[0], "data": {"n": 1}, "attempts": 1, "type": "overcast.topic.message"}
        assert not (out / f"{ids[1]}.json").exists()
    finally:
        cleanups = [
            lambda: subscriber.delete_subscription(request={"subscription": sub}),
            lambda: publisher.delete_topic(request={"topic": topic}),
        ]
        for cleanup in cleanups:
            with contextlib.suppress(Exception):  # the emulator is shared; leftovers are harmless
                cleanup()
        subscriber.close()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_push_past_max_attempts_goes_to_the_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pubsub_emulator: Any
) -> None:
    """Pub/Sub counts deliveries (``deliveryAttempt``); past the subscription's ``max_attempts`` the
    message is moved to the ``pubsub://`` provider's dead letters, with its id, and acknowledged."""
    import asyncio

    import overcast
    from overcast.providers.gcp import cloud_run_app

    suffix = uuid.uuid4().hex[:8]
    (tmp_path / "overcast.toml").write_text(f'[targets.gcp]\ntopic.jobs = "pubsub://dl-jobs-{suffix}"\n')
    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # the envelope is posted here without a token
    seen = Recorder()
    app = overcast.App("dl", config=tmp_path / "overcast.toml")
    jobs = app.topic("jobs")
    app.subscribe(jobs, name="work", max_attempts=2)(seen.handler("work"))
    asyncio.run(app.provision())
    asgi = cloud_run_app(app)
    subscription = f"projects/{os.environ['GOOGLE_CLOUD_PROJECT']}/subscriptions/dl-jobs-{suffix}.work"
    ok = envelope({"n": 1}, subscription=subscription, message_id="m-ok", deliveryAttempt=2)
    assert post_json(asgi, "/_overcast/pubsub", ok)[0] == 204
    late = envelope({"n": 2}, subscription=subscription, message_id="m-late", deliveryAttempt=3, attributes={"k": "v"})
    assert post_json(asgi, "/_overcast/pubsub", late)[0] == 204
    assert [e.id for _, e in seen.events] == ["m-ok"]
    dead = jobs.subscription("work", max_attempts=2).dead_letters()

    async def drain() -> list[Any]:
        got: list[Any] = []
        for _ in range(20):
            got += await dead.receive(max_messages=10, wait=1)
            if got:
                return got
        return got

    (message,) = asyncio.run(drain())
    assert (message.id, message.body, message.attributes) == ("m-late", {"n": 2}, {"k": "v"})
