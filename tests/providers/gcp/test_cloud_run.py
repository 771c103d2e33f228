"""``cloud_run_app``: HTTP to the app unchanged; Pub/Sub pushes of the app's own queues and
topics reach their handlers as the same events as on every cloud; failures answer 500 so
Pub/Sub redelivers; Cloud Storage notifications; schedules; OIDC tokens signed by keys
generated here (standing for Google's) are checked for issuer, audience, signature,
expiry and service account."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cloud_run_support import Recorder, call, envelope, make_app, post_json
from cryptography.hazmat.primitives.asymmetric import rsa

import overcast
from overcast.errors import ConfigError
from overcast.providers.gcp import cloud_run_app
from overcast.providers.gcp.oidc import GoogleOIDCVerifier, Unauthorized
from overcast.runtime.dispatch import QUEUE_MESSAGE, TOPIC_MESSAGE

SUB = "projects/demo-project/subscriptions/"
AUDIENCE = "https://demo-abc123-uc.a.run.app/_overcast/pubsub"
PUSHER = "pusher@demo-project.iam.gserviceaccount.com"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[overcast.App, Recorder]]:
    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    monkeypatch.delenv("OVERCAST_GCP_PUSH_AUDIENCE", raising=False)
    monkeypatch.setenv("OVERCAST_EVENTS_VERIFY", "off")  # deliveries posted here carry no token
    seen = Recorder()
    yield make_app(tmp_path, seen), seen


def test_http_requests_reach_the_app_unchanged(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app)
    status, body = call(asgi, "POST", "/users", b'{"id": "1"}', {"content-type": "application/json"})
    assert status == 200
    assert json.loads(body) == {"path": "/users", "method": "POST", "body": '{"id": "1"}'}
    # only the reserved prefix is taken; a look-alike path is the app's
    status, body = call(asgi, "GET", "/_overcastle")
    assert status == 200 and json.loads(body)["path"] == "/_overcastle"
    assert seen.events == []


def test_lifespan_reaches_the_app(setup: Any) -> None:
    import asyncio

    app, _ = setup
    asgi = cloud_run_app(app)
    sent: list[str] = []

    async def run() -> None:
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await asgi({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(run())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(
    ("subscription", "handler"),
    [
        ("demo-signups-welcome", "welcome"),  # the provider's <topic>-<subscription>
        ("demo-signups-audit", "audit"),
        ("demo-jobs", "work"),  # a queue: its topic's one subscription
    ],
)
def test_push_from_the_apps_own_subscription(setup: Any, subscription: str, handler: str) -> None:
    app, seen = setup
    asgi = cloud_run_app(app)
    body = envelope({"id": "u1"}, subscription=SUB + subscription, attributes={"origin": "api"}, deliveryAttempt=2)
    status, text = post_json(asgi, "/_overcast/pubsub", body)
    assert status == 204, text
    ((name, event),) = seen.events
    assert name == handler
    assert event.data == {"id": "u1"}
    assert event.id == "m-1"
    assert event.extensions["attempts"] == 2
    assert event.extensions["origin"] == "api"
    assert event.type == (QUEUE_MESSAGE if handler == "work" else TOPIC_MESSAGE)
    assert event.source == f"overcast://demo/{'queue/jobs' if handler == 'work' else 'topic/signups'}"
    assert event.original == body


def test_push_routed_by_path(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app)
    for path in ("/_overcast/pubsub/signups/audit", "/_overcast/pubsub/jobs", "/_overcast/pubsub/welcome"):
        status, text = post_json(asgi, path, envelope([1, 2], subscription=SUB + "whatever"))
        assert status == 204, text
    assert seen.names() == ["audit", "work", "welcome"]
    status, text = post_json(asgi, "/_overcast/pubsub/signups", envelope(1, subscription=SUB + "x"))
    assert status == 404 and b"RESOURCE/SUBSCRIPTION" in text


def test_handler_error_answers_500_so_pubsub_redelivers(setup: Any) -> None:
    app, seen = setup
    seen.fail.add("welcome")
    asgi = cloud_run_app(app)
    status, text = post_json(asgi, "/_overcast/pubsub", envelope({}, subscription=SUB + "demo-signups-welcome"))
    assert status == 500 and b"welcome failed" in text
    seen.fail.clear()
    status, _ = post_json(asgi, "/_overcast/pubsub", envelope({}, subscription=SUB + "demo-signups-welcome"))
    assert status == 204
    assert seen.names() == ["welcome", "welcome"]


def test_non_json_and_binary_message_data(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app)
    for raw in (b"plain text", b"\xff\x00\x01"):
        body = envelope(None, subscription=SUB + "demo-jobs")
        body["message"]["data"] = base64.b64encode(raw).decode()
        assert post_json(asgi, "/_overcast/pubsub", body)[0] == 204
    assert [e.data for _, e in seen.events] == ["plain text", b"\xff\x00\x01"]


def test_bad_deliveries(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app)
    assert call(asgi, "GET", "/_overcast/pubsub")[0] == 405
    status, text = call(asgi, "POST", "/_overcast/pubsub", b"{not json", {"content-type": "application/json"})
    assert status == 400 and b"not JSON" in text
    status, text = post_json(asgi, "/_overcast/pubsub", {"hello": 1})
    assert status == 400 and b"not a Pub/Sub push" in text
    body = envelope(1, subscription=SUB + "demo-jobs")
    body["message"]["data"] = "%%%"
    assert post_json(asgi, "/_overcast/pubsub", body)[0] == 400
    del body["message"]["messageId"], body["message"]["message_id"]
    assert post_json(asgi, "/_overcast/pubsub", body)[0] == 400
    status, text = post_json(asgi, "/_overcast/pubsub", envelope(1, subscription=SUB + "someone-elses"))
    assert status == 404 and b"no route" in text
    assert post_json(asgi, "/_overcast/nothing", {})[0] == 404
    assert seen.events == []


def test_routes_name_subscriptions_schedules_or_functions(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app, routes={"//pubsub.googleapis.com/*/foreign-*": "audit", "*.scheduler.*": "tick"})
    assert post_json(asgi, "/_overcast/pubsub", envelope({"x": 1}, subscription=SUB + "foreign-sub"))[0] == 204
    ((name, event),) = seen.events
    # a message of a foreign subscription arrives as Eventarc would send it
    assert (name, event.type) == ("audit", "google.cloud.pubsub.topic.v1.messagePublished")
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "//cloudscheduler",
        "ce-type": "google.cloud.scheduler.job.v1.executed",
    }
    assert call(asgi, "POST", "/_overcast/events", b"{}", {**headers, "content-type": "application/json"})[0] == 204
    assert seen.names()[-1] == "tick"
    with pytest.raises(ConfigError, match="names no subscription or schedule"):
        cloud_run_app(app, routes={"x": "nope"})


def test_eventarc_pubsub_trigger_on_an_apps_topic(setup: Any) -> None:
    """Eventarc's messagePublished event for the app's queue's topic reaches the queue's handler."""
    app, seen = setup
    asgi = cloud_run_app(app)
    push = envelope({"job": 7}, subscription=SUB + "eventarc-us-central1-trigger-123")
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "m-1",
        "ce-source": "//pubsub.googleapis.com/projects/demo-project/topics/demo-jobs",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "content-type": "application/json",
    }
    status, text = call(asgi, "POST", "/_overcast/events", json.dumps(push).encode(), headers)
    assert status == 204, text
    ((name, event),) = seen.events
    assert (name, event.type, event.data) == ("work", QUEUE_MESSAGE, {"job": 7})


def test_storage_notification(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app, routes={"google.cloud.storage.object.v1.*": seen.handler("uploads")})
    resource = {"bucket": "avatars", "name": "a/b.png", "generation": "17", "size": "3"}
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "avatars",
        "objectId": "a/b.png",
        "objectGeneration": "17",
        "eventTime": "2026-01-02T03:04:05.000001Z",
        "payloadFormat": "JSON_API_V1",
        "notificationConfig": "projects/_/buckets/avatars/notificationConfigs/1",
    }
    body = envelope(resource, subscription=SUB + "avatars-uploads", attributes=attributes)
    assert post_json(asgi, "/_overcast/pubsub", body)[0] == 204
    attributes = {**attributes, "eventType": "OBJECT_DELETE", "payloadFormat": "NONE"}
    body = envelope(None, subscription=SUB + "avatars-uploads", attributes=attributes, message_id="m-2")
    assert post_json(asgi, "/_overcast/pubsub", body)[0] == 204
    (_, created), (_, deleted) = seen.events
    assert created.type == "google.cloud.storage.object.v1.finalized"
    assert created.source == "//storage.googleapis.com/projects/_/buckets/avatars"
    assert created.subject == "objects/a/b.png"
    assert created.data == resource
    assert created.time is not None and created.time.microsecond == 1
    assert deleted.type == "google.cloud.storage.object.v1.deleted"
    assert deleted.data == {"bucket": "avatars", "name": "a/b.png", "generation": "17"}


def test_scheduler_target_fires_a_schedule(setup: Any) -> None:
    app, seen = setup
    asgi = cloud_run_app(app)
    assert call(asgi, "POST", "/_overcast/schedule/tick")[0] == 204
    assert seen.names() == ["tick"]
    assert call(asgi, "POST", "/_overcast/schedule/nope")[0] == 404


# -- OIDC -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    google = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(google.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    return {"google": google, "stranger": stranger, "jwks": {"keys": [jwk]}}


def _token(key: Any, *, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "email": PUSHER,
        "email_verified": True,
        "sub": "1234",
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid})


def test_oidc_token_required_and_checked(setup: Any, keys: dict[str, Any]) -> None:
    app, seen = setup
    verifier = GoogleOIDCVerifier(AUDIENCE, emails=[PUSHER], jwks=keys["jwks"])
    asgi = cloud_run_app(app, verifier=verifier)
    body = envelope({"ok": True}, subscription=SUB + "demo-jobs")
    good = _token(keys["google"])
    assert post_json(asgi, "/_overcast/pubsub", body, {"authorization": f"Bearer {good}"})[0] == 204
    refused = {
        "no header": None,
        "not bearer": f"Basic {good}",
        "garbage": "Bearer abc.def",
        "wrong audience": f"Bearer {_token(keys['google'], aud='https://elsewhere.run.app')}",
        "wrong issuer": f"Bearer {_token(keys['google'], iss='https://evil.example.com')}",
        "expired": f"Bearer {_token(keys['google'], exp=int(time.time()) - 600, iat=int(time.time()) - 4000)}",
        "other signer": f"Bearer {_token(keys['stranger'])}",
        "unknown kid": f"Bearer {_token(keys['google'], kid='k9')}",
        "other account": f"Bearer {_token(keys['google'], email='x@evil.iam.gserviceaccount.com')}",
        "unverified email": f"Bearer {_token(keys['google'], email_verified=False)}",
        "no expiry": f"Bearer {_token(keys['google'], exp=None)}",
    }
    for why, header in refused.items():
        headers = {} if header is None else {"authorization": header}
        status, text = post_json(asgi, "/_overcast/pubsub", body, headers)
        assert status == 401, (why, text)
    assert len(seen.events) == 1
    # the HTTP app does its own auth: no token needed there
    assert call(asgi, "GET", "/health")[0] == 200


def test_google_keys_fetched_once_and_again_for_a_new_kid(keys: dict[str, Any]) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return dict(keys["jwks"])

    verifier = GoogleOIDCVerifier(AUDIENCE, fetch=fetch, min_refresh=0)
    token = _token(keys["google"])
    assert verifier.verify(f"Bearer {token}")["email"] == PUSHER
    assert verifier.verify(f"Bearer {token}")["sub"] == "1234"
    assert fetched == ["https://www.googleapis.com/oauth2/v3/certs"]
    with pytest.raises(Unauthorized, match="unknown key"):
        verifier.verify(f"Bearer {_token(keys['google'], kid='rotated')}")
    assert len(fetched) == 2


def test_audience_from_the_environment(setup: Any, keys: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = setup
    monkeypatch.delenv("OVERCAST_EVENTS_VERIFY")
    monkeypatch.setenv("OVERCAST_GCP_PUSH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("OVERCAST_GCP_PUSH_EMAILS", PUSHER)
    asgi = cloud_run_app(app)
    assert asgi.verifier is not None
    assert asgi.verifier.audience == [AUDIENCE] and asgi.verifier.emails == {PUSHER}
    assert post_json(asgi, "/_overcast/pubsub", envelope(1, subscription=SUB + "demo-jobs"))[0] == 401


def test_overcast_run_picks_cloud_run_on_a_gcp_target(
    setup: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.cli import _runtimes
    from overcast.config import Target
    from overcast.providers.gcp.cloud_run import CloudRunApp, create_asgi

    def is_gcp(target: Target) -> bool:
        return _runtimes(target).get("serve_factory") == "overcast.providers.gcp.cloud_run:create_asgi"

    assert is_gcp(Target("gcp"))
    assert is_gcp(Target("prod", options={"cloud": "gcp"}))
    assert is_gcp(Target("prod", resources={"kv": {"users": "firestore://users"}}))
    assert not is_gcp(Target("gcp", options={"cloud": "aws"}))
    assert not is_gcp(Target("aws"))
    # the factory behind `overcast run --workers N`
    (tmp_path / "app.py").write_text("import overcast\napp = overcast.App('factory')\napp.http(lambda e, s: [])\n")
    monkeypatch.setenv("OVERCAST_APP_DIR", str(tmp_path))
    monkeypatch.setenv("OVERCAST_APP", "app:app")
    built = create_asgi()
    assert isinstance(built, CloudRunApp) and built.app.name == "factory"


def test_a_pattern_declared_with_app_on_routes_without_routes(setup: Any) -> None:
    app, seen = setup
    app.on("google.cloud.storage.object.v1.*", name="uploads")(seen.handler("uploads"))
    asgi = cloud_run_app(app)
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "avatars",
        "objectId": "a.png",
        "objectGeneration": "1",
        "eventTime": "2026-01-02T03:04:05Z",
        "payloadFormat": "JSON_API_V1",
    }
    resource = {"bucket": "avatars", "name": "a.png", "generation": "1"}
    body = envelope(resource, subscription=SUB + "avatars-uploads", attributes=attributes)
    assert post_json(asgi, "/_overcast/pubsub", body)[0] == 204
    ((_, event),) = seen.events
    assert event.type == "google.cloud.storage.object.v1.finalized"


def test_a_bucket_declared_with_app_on_takes_its_storage_events_without_routes(setup: Any, tmp_path: Path) -> None:
    """@app.on(bucket) on Cloud Run: a Cloud Storage notification or an Eventarc event of the
    bucket's gs:// bucket, of a declared kind, under the bucket's and the route's prefix."""
    app, seen = setup
    toml = tmp_path / "overcast.toml"
    toml.write_text(toml.read_text() + 'bucket.avatars = "gs://demo-avatars/pics"\n')
    app.use_config(toml)
    avatars = app.bucket("avatars")
    app.on(avatars, events=("created",), prefix="big/", name="big")(seen.handler("big"))
    app.on(avatars, events=("deleted",), name="gone")(seen.handler("gone"))
    asgi = cloud_run_app(app)

    def notification(kind: str, bucket: str, key: str) -> int:
        attributes = {"eventType": kind, "bucketId": bucket, "objectId": key, "payloadFormat": "NONE"}
        body = envelope(None, subscription=SUB + "avatars", attributes=attributes)
        return post_json(asgi, "/_overcast/pubsub", body)[0]

    assert notification("OBJECT_FINALIZE", "demo-avatars", "pics/big/a.png") == 204
    assert notification("OBJECT_DELETE", "demo-avatars", "pics/small/b.png") == 204
    assert notification("OBJECT_FINALIZE", "demo-avatars", "pics/small/c.png") == 404  # no handler of it
    assert notification("OBJECT_DELETE", "other-bucket", "pics/d.png") == 404
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "e-1",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/demo-avatars",
        "ce-subject": "objects/pics/big/e.png",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "content-type": "application/json",
    }
    body = json.dumps({"bucket": "demo-avatars", "name": "pics/big/e.png"}).encode()
    assert call(asgi, "POST", "/_overcast/events", body, headers)[0] == 204
    assert call(asgi, "POST", "/_overcast/events/gone", body, headers)[0] == 204  # by the route's name
    assert [(name, event.subject) for name, event in seen.events] == [
        ("big", "objects/pics/big/a.png"),
        ("gone", "objects/pics/small/b.png"),
        ("big", "objects/pics/big/e.png"),
        ("gone", "objects/pics/big/e.png"),
    ]
