"""Cloud Run's event endpoints verify who sent each delivery, on by default.

The signing keys are generated here and served as a JWKS by a real HTTP server this
test starts (standing for Google's ``oauth2/v3/certs``); the runtime fetches them
through ``[targets.NAME.events] jwks_url``. Pub/Sub push, Eventarc and Cloud Scheduler
all send the same kind of token, so one endpoint of each kind is tried.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cloud_run_support import Recorder, call, envelope, free_port, make_app, post_json, wait_http
from cryptography.hazmat.primitives.asymmetric import rsa

import overcast
from overcast.errors import ConfigError
from overcast.providers.gcp import cloud_run_app

SUB = "projects/demo-project/subscriptions/demo-jobs"
PUSHER = "pusher@demo-project.iam.gserviceaccount.com"
AUDIENCE = "https://demo-abc123-uc.a.run.app/_overcast/pubsub"
SRC = str(Path(overcast.__file__).resolve().parents[1])  # the overcast under test, in the server too
ENV = ("OVERCAST_EVENTS_VERIFY", "OVERCAST_GCP_PUSH_AUDIENCE", "OVERCAST_GCP_PUSH_EMAILS", "OVERCAST_GCP_JWKS_URL")


@pytest.fixture(scope="module")
def google() -> Iterator[dict[str, Any]]:
    """Google's signing key (generated here), a stranger's, and a real HTTP server serving the JWKS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="g1", alg="RS256", use="sig")
    document = json.dumps({"keys": [jwk]}).encode()
    fetched: list[str] = []

    class Certs(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/oauth2/v3/certs"
    yield {"key": key, "stranger": stranger, "url": url, "fetched": fetched}
    server.shutdown()
    server.server_close()


def token(key: Any, *, kid: str = "g1", **claims: Any) -> str:
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


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("OVERCAST_TARGET", "gcp")
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _app(tmp_path: Path, events: str = "") -> tuple[Any, Recorder]:
    seen = Recorder()
    app = make_app(tmp_path, seen)
    if events:
        config = tmp_path / "overcast.toml"
        config.write_text(config.read_text() + "\n[targets.gcp.events]\n" + events)
    return app, seen


def _events(google: dict[str, Any], **keys: Any) -> str:
    keys = {"jwks_url": google["url"], **keys}
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())


def test_forged_expired_and_misaddressed_tokens_are_refused(
    tmp_path: Path, clean_env: Any, google: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = _app(tmp_path, _events(google, service_accounts=[PUSHER], audience=AUDIENCE))
    with caplog.at_level(logging.INFO, "overcast.gcp.cloud_run"):
        asgi = cloud_run_app(app)
    assert f"checks Google-signed OIDC tokens for audience {AUDIENCE} from {PUSHER}" in caplog.text
    body = envelope({"ok": True}, subscription=SUB)
    good = token(google["key"])
    status, text = post_json(asgi, "/_overcast/pubsub", body, {"authorization": f"Bearer {good}"})
    assert status == 204, text
    assert google["fetched"] == ["/oauth2/v3/certs"]  # fetched over HTTP, once
    now = int(time.time())
    refused = {
        "no Authorization header": None,
        "not 'Bearer <token>'": f"Basic {good}",
        "malformed token": "Bearer not.a.jwt",
        "Signature verification failed": f"Bearer {token(google['stranger'])}",  # forged: same kid, other key
        "unknown key": f"Bearer {token(google['stranger'], kid='k-evil')}",
        "expired": f"Bearer {token(google['key'], exp=now - 600, iat=now - 4000)}",
        "audience": f"Bearer {token(google['key'], aud='https://elsewhere.run.app/_overcast/pubsub')}",
        "issuer": f"Bearer {token(google['key'], iss='https://evil.example.com')}",
        "not an allowed service account": f"Bearer {token(google['key'], email='x@evil.iam.gserviceaccount.com')}",
        "not RS256": "Bearer " + jwt.encode({"aud": AUDIENCE}, "k" * 32, algorithm="HS256", headers={"kid": "g1"}),
    }
    for reason, header in refused.items():
        headers = {} if header is None else {"authorization": header}
        status, text = post_json(asgi, "/_overcast/pubsub", body, headers)
        assert status == 401, (reason, text)
        assert reason.lower() in text.decode().lower(), (reason, text)
        assert b"Traceback" not in text
    assert seen.names() == ["work"]


def test_scheduler_and_eventarc_deliveries_need_the_token_too(
    tmp_path: Path, clean_env: Any, google: dict[str, Any]
) -> None:
    """No audience named: the URL posted to (Scheduler, Pub/Sub) or the service's URL (Eventarc) is."""
    app, seen = _app(tmp_path, _events(google, service_accounts=PUSHER))
    asgi = cloud_run_app(app)
    host = {"host": "demo-abc123-uc.a.run.app", "x-forwarded-proto": "https"}
    # Cloud Scheduler's HTTP target: the audience is the target URL
    fired = token(google["key"], aud="https://demo-abc123-uc.a.run.app/_overcast/schedule/tick")
    assert call(asgi, "POST", "/_overcast/schedule/tick", b"", host)[0] == 401
    assert call(asgi, "POST", "/_overcast/schedule/tick", b"", {**host, "authorization": f"Bearer {fired}"})[0] == 204
    assert seen.names() == ["tick"]
    # a token minted for this URL is still refused from another account, or for another service
    other = token(google["key"], aud="https://demo-abc123-uc.a.run.app", email="x@evil.iam.gserviceaccount.com")
    assert call(asgi, "POST", "/_overcast/schedule/tick", b"", {**host, "authorization": f"Bearer {other}"})[0] == 401
    elsewhere = token(google["key"], aud="https://other-service.run.app")
    status, text = call(asgi, "POST", "/_overcast/schedule/tick", b"", {**host, "authorization": f"Bearer {elsewhere}"})
    assert status == 401 and b"audience" in text.lower()
    # Eventarc (binary mode): the audience is the service's URL
    ce = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/demo-project/topics/demo-jobs",
        "ce-id": "e-1",
        "content-type": "application/json",
    }
    data = json.dumps({"message": envelope({"n": 1}, subscription=SUB)["message"], "subscription": SUB}).encode()
    assert call(asgi, "POST", "/_overcast/events", data, {**host, **ce})[0] == 401
    eventarc = token(google["key"], aud="https://demo-abc123-uc.a.run.app")
    auth = {"authorization": f"Bearer {eventarc}"}
    assert call(asgi, "POST", "/_overcast/events", data, {**host, **ce, **auth})[0] == 204
    assert seen.names() == ["tick", "work"]


def test_nothing_configured_refuses_every_delivery(
    tmp_path: Path, clean_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = _app(tmp_path)
    with caplog.at_level(logging.INFO, "overcast.gcp.cloud_run"):
        asgi = cloud_run_app(app)
    started = [r for r in caplog.records if "refuses every delivery" in r.getMessage()]
    assert started and started[0].levelno == logging.ERROR
    assert "service_accounts" in started[0].getMessage() and 'verify = "off"' in started[0].getMessage()
    for path in ("/_overcast/pubsub", "/_overcast/events/jobs", "/_overcast/schedule/tick"):
        status, text = post_json(asgi, path, envelope({"n": 1}, subscription=SUB))
        assert status == 403, (path, text)
        assert b"service_accounts" in text and b"OVERCAST_EVENTS_VERIFY=off" in text
    assert seen.events == []
    # the app's own routes are the app's business
    assert call(asgi, "GET", "/users")[0] == 200


def test_verification_switched_off_explicitly(tmp_path: Path, clean_env: Any, caplog: pytest.LogCaptureFixture) -> None:
    app, seen = _app(tmp_path, 'verify = "off"\n')
    with caplog.at_level(logging.INFO, "overcast.gcp.cloud_run"):
        asgi = cloud_run_app(app)
    warned = [r for r in caplog.records if "events.verify = off" in r.getMessage()]
    assert warned and warned[0].levelno == logging.WARNING and "private" in warned[0].getMessage()
    assert post_json(asgi, "/_overcast/pubsub", envelope({"n": 1}, subscription=SUB))[0] == 204
    assert seen.names() == ["work"]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ('verify = "oidc"\n', "needs service_accounts"),
        ('verify = "maybe"\n', 'use "oidc"'),
        ('audiences = "https://x"\n', "unknown key 'audiences'"),
        ("service_accounts = 3\n", "service_accounts"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, clean_env: Any, events: str, message: str) -> None:
    app, _ = _app(tmp_path, events)
    with pytest.raises(ConfigError, match=r"\[targets\.gcp\.events\]") as caught:
        cloud_run_app(app)
    assert message in str(caught.value)


def test_the_environment_configures_it_too(tmp_path: Path, clean_env: Any, google: dict[str, Any]) -> None:
    app, seen = _app(tmp_path)
    clean_env.setenv("OVERCAST_GCP_PUSH_EMAILS", PUSHER)
    clean_env.setenv("OVERCAST_GCP_PUSH_AUDIENCE", AUDIENCE)
    clean_env.setenv("OVERCAST_GCP_JWKS_URL", google["url"])
    asgi = cloud_run_app(app)
    body = envelope({"n": 1}, subscription=SUB)
    assert post_json(asgi, "/_overcast/pubsub", body)[0] == 401
    good = {"authorization": f"Bearer {token(google['key'])}"}
    assert post_json(asgi, "/_overcast/pubsub", body, good)[0] == 204
    assert seen.names() == ["work"]


RUN_APP = """\
import overcast

app = overcast.App("guarded")
jobs = app.queue("jobs")
app.http(lambda environ, start: (start("200 OK", []), [b"api"])[1])

@app.subscribe(jobs)
async def work(event):
    print("HANDLED", event.id, flush=True)
"""


def test_overcast_run_says_at_start_and_refuses_over_http(tmp_path: Path, google: dict[str, Any]) -> None:
    """A real ``overcast run`` on a gcp target: the start-up line, then 401/403 on the wire."""
    (tmp_path / "app.py").write_text(RUN_APP)
    base = '[app]\nentry = "app:app"\n\n[targets.gcp]\nqueue.jobs = "pubsub://guarded-jobs?project=demo"\n'
    body = json.dumps(envelope({"n": 1}, subscription="projects/demo/subscriptions/guarded-jobs"))
    for events, expect in (("", 403), (_events(google, service_accounts=[PUSHER]), 401)):
        (tmp_path / "overcast.toml").write_text(base + ("[targets.gcp.events]\n" + events if events else ""))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ENV}
        env.update(PORT=str(port), OVERCAST_TARGET="gcp", PYTHONPATH=SRC)
        log = tmp_path / f"server-{expect}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "overcast", "run", "--host", "127.0.0.1"],
                cwd=tmp_path,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_http(f"http://127.0.0.1:{port}/")
            url = f"http://127.0.0.1:{port}/_overcast/pubsub/jobs"
            reply = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
            assert reply.status_code == expect, reply.text
            assert "Traceback" not in reply.text
            if expect == 401:
                mine = token(google["key"], aud=url)
                reply = httpx.post(url, content=body, headers={"authorization": f"Bearer {mine}"}, timeout=10)
                assert reply.status_code == 204, (reply.text, log.read_text())
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=15)
        said = log.read_text()
        assert ("refuses every delivery" in said) == (expect == 403), said
        assert ("checks Google-signed OIDC tokens" in said) == (expect == 401), said
        assert ("HANDLED" in said) == (expect == 401), said
