"""Pub/Sub's name rule for the backlogs Overcast derives: 3-255 letters, digits or ``-_.~+%``,
starting with a letter and not with ``goog``. An app called ``google-demo`` would derive
``google-demo-...-deferred``, which Pub/Sub refuses (the emulator too: proven below); the
provider's ``legal_name`` makes it ``overcast-google-demo-...-<hash>``, and the backlog works
on the emulator: created, an event parked, replayed to the handler once.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.providers.gcp.pubsub import legal_pubsub_name
from overcast.runtime.cloudevent import CloudEvent
from overcast.runtime.deferral import event_work, subscription_deferral, subscription_replayer
from servers import Server

PUBSUB = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$", re.IGNORECASE)


def test_the_pubsub_rule() -> None:
    for legal in ("mailer-jobs-deferred", "a.b~c+d%e_f", "x" * 250, "overcast-google-demo"):
        assert legal_pubsub_name(legal) == legal, "a legal name is kept"
    for name in ("google-demo-signups-deferred", "goog", "Google", "GOOG-x", "1app", "ab", "-x-", "x" * 251, "ü" * 9):
        derived = legal_pubsub_name(name)
        assert PUBSUB.match(derived) and PUBSUB.match(derived + ".dead"), (name, derived)
        assert len(derived + ".dead") <= 255, "room for its dead letters' topic"
        assert derived == legal_pubsub_name(name), "deterministic"
    assert legal_pubsub_name("google-demo-jobs-deferred").startswith("overcast-google-demo-jobs-deferred-")
    # two names that share what is kept of them still differ (the hash is of the whole name)
    assert legal_pubsub_name("x" * 260 + "a") != legal_pubsub_name("x" * 260 + "b")
    assert legal_pubsub_name("google-a") != legal_pubsub_name("overcast-google-a")


def google_app(tmp_path: Path, toml: str) -> overcast.App:
    (tmp_path / "overcast.toml").write_text(toml)
    app = overcast.App(f"google-demo-{uuid.uuid4().hex[:6]}", config=tmp_path / "overcast.toml")
    seen: list[CloudEvent] = []
    app.seen = seen  # type: ignore[attr-defined]

    @app.subscribe(app.queue("jobs"), critical=False)
    async def work(event: CloudEvent) -> None:
        seen.append(event)

    return app


@pytest.mark.parametrize("how", ["derived", "template"])
def test_an_app_named_google_gets_legal_backlog_names(how: str, tmp_path: Path) -> None:
    toml = '[targets.gcp]\ncloud = "gcp"\nqueue.jobs = "pubsub://demo-jobs"\n'
    if how == "template":
        toml += 'defaults.queue = "pubsub://{app}-{name}"\n'
    app = google_app(tmp_path, toml)
    backlog = app.resources[subscription_deferral(app.subscriptions[0], app.name).name]
    host = backlog.url_on("gcp").host
    assert host.startswith(f"overcast-{app.name}-jobs-deferred-") and PUBSUB.match(host + ".dead"), host


def test_the_emulator_refuses_goog_and_the_backlog_works(
    tmp_path: Path, pubsub_emulator: Server, firestore_emulator: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core.exceptions import InvalidArgument
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    project = os.environ["GOOGLE_CLOUD_PROJECT"]
    with pytest.raises(InvalidArgument):  # the rule is the emulator's too
        pubsub_v1.PublisherClient().create_topic(name=f"projects/{project}/topics/google-demo-{uuid.uuid4().hex[:6]}")
    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    suffix = uuid.uuid4().hex[:6]
    app = google_app(
        tmp_path,
        f'[targets.gcp]\ndefaults.queue = "pubsub://{{app}}-{{name}}"\nqueue.jobs = "pubsub://jobs-{suffix}"\n',
    )
    asyncio.run(app.provision())
    sub = app.subscriptions[0]
    deferral = subscription_deferral(sub, app.name)
    assert deferral.backlog.queue.location.host.startswith("overcast-google-demo-")
    event = CloudEvent(type="demo.signup", source="//demo", id=f"evt-{suffix}", data={"n": 1})
    assert asyncio.run(deferral.park("event", event_work(event), None)) is not None
    stats = asyncio.run(subscription_replayer(sub, app=app.name, wait=0).drain(timeout=30))
    assert stats.replayed == 1 and [(e.id, e.data) for e in app.seen] == [(event.id, {"n": 1})]  # type: ignore[attr-defined]
