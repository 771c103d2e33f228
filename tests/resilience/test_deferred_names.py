"""The names a backlog's queue, its dead letters and the lease store get on each cloud are ones
the cloud takes, however long the app's and the subscription's names: cut with a hash of the
whole name (two long names never collide), the same in every process, for the runtime and a plan.

Azure (3-63 characters; queues lowercase letters, digits and single hyphens, room for
``-poison``; tables letters and digits starting with a letter) is proven on Azurite: a real
queue, poison queue and table made with the names derived from a 100-character subscription.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.providers.aws.sqs import SQSQueue
from overcast.providers.azure.queues import POISON_SUFFIX, legal_queue_name, subscription_queue_name
from overcast.providers.azure.tables import legal_table_name
from overcast.runtime.deferral import BACKLOG_STATE, subscription_deferral
from servers import Server

AZURE_QUEUE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
AZURE_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
SQS_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
PUBSUB = re.compile(r"^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")
DYNAMODB = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
LONG = "notify_every_subscriber_of_the_newsletter_about_the_new_release_and_the_changes_in_it_please_"  # 96
#: the longest a subscription's name may be (63), on a topic of 50: its backlog serves a 114-character name
SUBSCRIPTION = "notify_every_subscriber_of_the_newsletter_about_the_new_release"
TOPIC = "letters_to_the_subscribers_of_the_weekly_newsletter"


def test_the_azure_queue_rule() -> None:
    assert len(SUBSCRIPTION) == 63 and len(f"{TOPIC}-{SUBSCRIPTION}") > 100
    for legal in ("jobs", "users-demo-signups-send-welcome-deferred", "a" * (63 - len(POISON_SUFFIX))):
        assert legal_queue_name(legal) == legal, "a legal name is kept"
    for name in (SUBSCRIPTION, "A--B", "x", "Jobs_Deferred", "-a-", "a" * 57, "ü" * 70):
        shortened = legal_queue_name(name)
        assert shortened == legal_queue_name(name), "deterministic"
        assert 3 <= len(shortened + POISON_SUFFIX) <= 63 and AZURE_QUEUE.match(shortened + POISON_SUFFIX), name
    # two long names that share what is kept of them still differ (the hash is of the whole name)
    assert legal_queue_name(LONG + "abcd") != legal_queue_name(LONG + "abce")
    assert legal_queue_name(f"{TOPIC}-{SUBSCRIPTION}") != legal_queue_name(f"{TOPIC}-{SUBSCRIPTION}2")
    assert legal_queue_name("Jobs") != legal_queue_name("jobs"), "case is not lost silently"
    # the rule the topic subscriptions' queues already follow
    assert subscription_queue_name("orders", "send_receipt").startswith("orders-send-receipt-")


def test_the_azure_table_rule() -> None:
    for legal in ("mailerovercastbacklogs", "T" + "a" * 62):
        assert legal_table_name(legal) == legal
    for name in ("x" * 100, "tables", "Tables", "1abc", "ab", "a-b_c", "99", "a" * 64):
        shortened = legal_table_name(name)
        assert AZURE_TABLE.match(shortened) and shortened.lower() != "tables", (name, shortened)
        assert shortened == legal_table_name(name)
    assert legal_table_name("a" * 70 + "1") != legal_table_name("a" * 70 + "2")


def test_the_sqs_rule_leaves_room_for_the_dead_letters() -> None:
    assert SQSQueue.legal_name("mailer-jobs-deferred") == "mailer-jobs-deferred"
    for name in ("q" * 77, "a" * 200, "a.b" * 40):
        shortened = SQSQueue.legal_name(name)
        assert len(shortened + "-dlq") <= 80 and SQS_QUEUE.match(shortened + "-dlq"), name
    assert SQSQueue.legal_name("a" * 90 + "x") != SQSQueue.legal_name("a" * 90 + "y")


def long_app(tmp_path: Path, toml: str) -> overcast.App:
    """An app of a 60-character name with a non-critical subscription of 63 on a topic of 50."""
    (tmp_path / "overcast.toml").write_text(toml)
    app = overcast.App("newsletter" + "x" * 42 + uuid.uuid4().hex[:8], config=tmp_path / "overcast.toml")
    letters = app.topic(TOPIC)

    @app.subscribe(letters, critical=False, name=SUBSCRIPTION)
    async def notify(event: object) -> None: ...

    return app


CLOUDS = """
[targets.aws]
cloud = "aws"
[targets.gcp]
cloud = "gcp"
[targets.azure]
cloud = "azure"
"""


def test_derived_names_are_legal_on_every_cloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    app = long_app(tmp_path, CLOUDS)
    backlog = app.resources[subscription_deferral(app.subscriptions[0], app.name).name]
    state = app.resources[BACKLOG_STATE]
    assert len(backlog.resource_name) <= 63
    sqs = backlog.url_on("aws").host
    assert len(sqs + "-dlq") <= 80 and SQS_QUEUE.match(sqs), sqs
    assert DYNAMODB.match(state.url_on("aws").host)
    assert PUBSUB.match(backlog.url_on("gcp").host + ".dead")
    azure = backlog.url_on("azure").host
    assert len(azure + POISON_SUFFIX) <= 63 and AZURE_QUEUE.match(azure + POISON_SUFFIX), azure
    table = state.url_on("azure").host
    assert AZURE_TABLE.match(table), table
    assert table.startswith(app.name.lower()[:40]), "readable: the start of the name is kept"


def test_every_process_derives_the_same_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime of one process and a plan made in another agree on the names."""
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    (tmp_path / "overcast.toml").write_text(CLOUDS)
    code = f"""
import sys, overcast
from overcast.runtime.deferral import BACKLOG_STATE, subscription_deferral
app = overcast.App(sys.argv[1], config=sys.argv[2])
letters = app.topic({TOPIC!r})
app.subscribe(letters, critical=False, name={SUBSCRIPTION!r})(lambda event: None)
backlog = app.resources[subscription_deferral(app.subscriptions[0], app.name).name]
for target in ("aws", "gcp", "azure"):
    print(backlog.url_on(target).host, app.resources[BACKLOG_STATE].url_on(target).host)
"""
    name = "newsletter" + "y" * 50
    there = subprocess.run(
        [sys.executable, "-c", code, name, str(tmp_path / "overcast.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONHASHSEED": "7", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        check=True,
    ).stdout.splitlines()
    app = overcast.App(name, config=tmp_path / "overcast.toml")
    app.subscribe(app.topic(TOPIC), critical=False, name=SUBSCRIPTION)(lambda event: None)
    backlog = app.resources[subscription_deferral(app.subscriptions[0], app.name).name]
    state = app.resources[BACKLOG_STATE]
    here = [f"{backlog.url_on(t).host} {state.url_on(t).host}" for t in ("aws", "gcp", "azure")]
    assert there == here


def test_the_long_names_work_on_azurite(tmp_path: Path, azurite: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an Azure target naming no provider for them, the backlog queue, its poison queue and
    the lease table get the derived names, and Azurite takes them: an item parked, read back,
    dead-lettered; the lease taken. Also with ``defaults.queue = "azqueue://{app}-{name}"``."""
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    for toml in ('[targets.azure]\ncloud = "azure"\n', '[targets.azure]\ndefaults.queue = "azqueue://{app}-{name}"\n'):
        app = long_app(tmp_path, toml)
        asyncio.run(_park_and_dead_letter(app))


async def _park_and_dead_letter(app: overcast.App) -> None:
    deferral = subscription_deferral(app.subscriptions[0], app.name)
    backlog = deferral.backlog
    queue_name = backlog.queue.resolved_url().host
    assert len(queue_name + POISON_SUFFIX) <= 63, queue_name
    await backlog.park("event", {"event": {"id": "e-1", "source": "s", "type": "t", "data": {}}}, None)
    got = await backlog.queue.receive(max_messages=1, visibility_timeout=30)
    assert [m.body["work"]["event"]["id"] for m in got] == ["e-1"]
    await backlog.queue.dead_letters().create()
    await backlog.dead_letter(got[0])
    dead = await backlog.peek(5, dead=True)
    assert [m.body["work"]["event"]["id"] for m in dead] == ["e-1"]
    lease = deferral.lease(30.0)
    assert lease is not None and AZURE_TABLE.match(lease.store.resolved_url().host)
    assert await lease.hold(), "the lease table was created and written"
    await lease.release()
    app.reset()
