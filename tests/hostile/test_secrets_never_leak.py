"""No secret of the configuration ever shows: not in an error, a ``repr``/``str``, a log record
(every logger, at DEBUG), a span or a metric (the OpenTelemetry SDK's in-memory exporter
and reader), nor ``overcast doctor``'s output.

Each family runs with secret-bearing configuration (PostgreSQL and Redis passwords in
``${DATABASE_URL}``-style URLs, an Azure account key in a connection string, an AWS secret
key and session token in the environment, a Momento API key, a value read through
``app.secret``, the Event Grid webhook's token) against a closed port (connection refused),
against the real server where one runs here (an authentication failure, or success), and
through ``overcast doctor`` in a real process. Every text produced is searched for every
secret value; a find names where it was.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import overcast
from overcast import telemetry
from overcast.handles import SecretHandle
from servers import Server, free_port

SRC = str(Path(overcast.__file__).resolve().parents[1])

#: alphanumeric, so that no encoding (URL quoting, JSON, a repr) could hide one
PG_PASSWORD = "pgPw7f3a9c1eXq"
REDIS_PASSWORD = "rdPw2b8d4e6fXq"
AZURE_KEY = base64.b64encode(b"azure-account-key-that-is-secret-0123456789abcdef").decode()
AWS_SECRET = "awsSk9c1e7f3a5bXqLeakCheck0123456789abcd"
AWS_TOKEN = "awsTok5b9c1e7f3aXqSessionToken"
MOMENTO_KEY = "mmKey4e6f2b8dXqNotAValidKey"
APP_SECRET = "mailKey8d4e6f2bXq"
EVENTS_TOKEN = "evTok1a2b3c4dXq"
#: the logger of the app's own lines (test_secret_values)
APP_LOGGER = "leaky.app"
SECRETS = {
    "PostgreSQL password": PG_PASSWORD,
    "Redis password": REDIS_PASSWORD,
    "Azure account key": AZURE_KEY,
    "AWS secret key": AWS_SECRET,
    "AWS session token": AWS_TOKEN,
    "Momento API key": MOMENTO_KEY,
    "app.secret value": APP_SECRET,
    "Event Grid token": EVENTS_TOKEN,
}


class Witness(logging.Handler):
    """Everything that was said: log records of every logger at DEBUG (message, arguments and
    traceback), spans and metrics, and what the test adds (errors, reprs, command output)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[tuple[str, str]] = []
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == APP_LOGGER:
            return  # the app's own lines quote the secret by design: what Overcast writes of them is checked
        try:
            text = self.format(record)
        except Exception as exc:  # a record that cannot format is still searched by its parts
            text = f"{record.msg!r} {record.args!r} ({exc})"
        self.texts.append((f"log {record.name}", f"{text} {record.args!r}"))

    def add(self, where: str, text: Any) -> None:
        self.texts.append((where, str(text)))

    def error(self, where: str, exc: BaseException) -> None:
        """An error as a user meets it: str, repr, and the whole chained traceback."""
        self.add(f"{where}: str", exc)
        self.add(f"{where}: repr", repr(exc))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))

    def leaks(self) -> list[str]:
        telemetry.flush()
        found = [*self.texts]
        found += [(f"span {span.name}", span.to_json()) for span in self.spans.get_finished_spans()]
        data = self.metrics.get_metrics_data()
        if data is not None:
            found.append(("metrics", data.to_json()))
        return [
            f"{what} in {where}: ...{text[max(0, text.find(value) - 120) : text.find(value) + 40]}..."
            for where, text in found
            for what, value in SECRETS.items()
            if value in text
        ]


@pytest.fixture
def witness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Witness]:
    seen = Witness()
    root = logging.getLogger()
    level = root.level
    root.addHandler(seen)
    root.setLevel(logging.DEBUG)
    telemetry.configure(
        service_name="secrets-test",
        metric_readers=[seen.metrics],
        span_processors=[SimpleSpanProcessor(seen.spans)],
        set_global=False,
    )
    monkeypatch.chdir(tmp_path)
    yield seen
    root.removeHandler(seen)
    root.setLevel(level)
    telemetry.shutdown()
    telemetry.summarize_requests(None)
    telemetry.forget_secrets()


def _app(folder: Path, target: str, resources: str, kinds: dict[str, str]) -> tuple[overcast.App, dict[str, Any]]:
    """The app ``leaky`` declaring ``kinds`` (name -> kind), in ``folder`` (for doctor too), and its handles."""
    folder.mkdir(exist_ok=True)
    (folder / "overcast.toml").write_text(f'[app]\nentry = "app:app"\n\n[targets.{target}]\n{resources}')
    declared = "".join(f"app.{kind}({name!r})\n" for name, kind in kinds.items())
    (folder / "app.py").write_text(f"import overcast\n\napp = overcast.App('leaky')\n{declared}")
    app = overcast.App("leaky", config=folder / "overcast.toml")
    return app, {f"{kind}.{name}": getattr(app, kind)(name) for name, kind in kinds.items()}


def _attempt(seen: Witness, where: str, call: Callable[[], Any], *, result: bool = True) -> Any:
    """Run one call; its error (any) is witnessed, its result too (unless it is the secret itself)."""
    try:
        found = call()
    except Exception as exc:
        seen.error(where, exc)
        return exc
    if result:
        seen.add(f"{where}: result", repr(found))
    return found


def _exercise(seen: Witness, app: overcast.App, handles: dict[str, Any], *, results: bool = True) -> None:
    """Every handle: repr/str, its provider's and URL's, and one call of each kind, errors witnessed."""
    for name, handle in handles.items():
        seen.add(f"{name}: repr", repr(handle))
        seen.add(f"{name}: str", str(handle))
        url = _attempt(seen, f"{name}: url", handle.resolved_url)
        seen.add(f"{name}: url repr", repr(url))
        opener = handle._store._target if isinstance(handle, SecretHandle) else handle._target
        provider = _attempt(seen, f"{name}: open", opener)
        seen.add(f"{name}: provider repr", repr(provider))
        seen.add(f"{name}: provider vars", repr(vars(provider)) if hasattr(provider, "__dict__") else "")
        for op, call in _calls(handle).items():
            _attempt(seen, f"{name}.{op}", call, result=results)
        _attempt(seen, f"{name}.ping", lambda h=handle: asyncio.run(h.ping()))


def _calls(handle: Any) -> dict[str, Callable[[], Any]]:
    sync = handle.sync
    kind = type(handle).__name__
    if kind == "KVHandle":
        return {"put": lambda: sync.put("k", {"v": 1}), "get": lambda: sync.get("k")}
    if kind == "BucketHandle":
        return {"put": lambda: sync.put("k", b"v"), "get": lambda: sync.get("k")}
    if kind == "QueueHandle":
        return {"send": lambda: sync.send({"v": 1}), "receive": lambda: sync.receive(wait=0)}
    if kind == "TopicHandle":
        return {"publish": lambda: sync.publish({"v": 1})}
    if kind == "CacheHandle":
        return {"set": lambda: sync.set("k", 1), "get": lambda: sync.get("k")}
    if kind == "SecretHandle":
        return {"get": lambda: sync.get()}
    raise AssertionError(f"no calls for {kind}")


def _doctor(seen: Witness, folder: Path, target: str, env: dict[str, str]) -> None:
    """``overcast doctor`` in a real process, its output witnessed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OVERCAST_")}
    done = subprocess.run(
        [sys.executable, "-m", "overcast", "doctor", "--target", target, "--timeout", "3"],
        cwd=folder,
        env={**clean, **env, "PYTHONPATH": SRC, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    seen.add(f"doctor {target}: stdout", done.stdout)
    seen.add(f"doctor {target}: stderr", done.stderr)
    assert done.stdout or done.stderr


def _run(seen: Witness, folder: Path, target: str, resources: str, kinds: dict[str, str], env: dict[str, str]) -> None:
    """One app in-process (every handle exercised) and ``overcast doctor`` on it, with ``env`` set."""
    saved = {name: os.environ.get(name) for name in [*env, "OVERCAST_TARGET"]}
    os.environ.update({**env, "OVERCAST_TARGET": target})
    try:
        app, handles = _app(folder, target, resources, kinds)
        _exercise(seen, app, handles)
        app.reset()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    _doctor(seen, folder, target, env)


def _witnessed(seen: Witness, *needles: str, spans: bool = True) -> None:
    """The run did reach what it says (so a clean result means something), and was traced."""
    text = "\n".join(t for _, t in seen.texts)
    for needle in needles:
        assert needle in text, f"{needle!r} was never said"
    assert not spans or seen.spans.get_finished_spans(), "no span was recorded"


@pytest.fixture
def own_pools() -> Iterator[None]:
    """Close the PostgreSQL pools this test opened (those of closed ports would retry in the
    background, logging, for the rest of the test process)."""
    from overcast.providers.postgres import _db

    before = set(_db._pools)
    yield
    for info in set(_db._pools) - before:
        _db._pools.pop(info).close(timeout=1)


def test_postgres_passwords(witness: Witness, tmp_path: Path, postgres_server: Server, own_pools: None) -> None:
    user = os.environ.get("PGUSER", "postgres")
    real = os.environ["OVERCAST_TEST_POSTGRES_URL"].replace("postgresql://", f"postgresql://{user}:{PG_PASSWORD}@")
    closed = f"postgresql://{user}:{PG_PASSWORD}@127.0.0.1:{free_port()}/postgres?timeout=2"
    wrong_db = real.replace("/postgres", "/no_such_db")
    resources = 'kv.users = "${DATABASE_URL}"\nqueue.jobs = "${DATABASE_URL}"\n'
    bad = f"postgresql://{user}:{PG_PASSWORD}@127.0.0.1:99999999/postgres?no_such_option=1"
    cases = {
        "closed": closed,
        "real": real,
        "wrong-db": wrong_db,
        "bad-url": bad,
        # a password with a '/' the user did not percent-encode: the URL no longer parses as meant
        "slash": f"postgresql://{user}:ab/{PG_PASSWORD}@127.0.0.1:{free_port()}/postgres",
        # a secret put in an option, which URLs refuse (and the refusal must not repeat)
        "option": f"postgresql://127.0.0.1:{free_port()}/postgres?timeout=1&password={PG_PASSWORD}",
        "repeated": f"postgresql://127.0.0.1:{free_port()}/postgres?timeout=1&timeout=2&password={PG_PASSWORD}",
    }
    for label, url in cases.items():
        _run(witness, tmp_path / label, "pg", resources, {"users": "kv", "jobs": "queue"}, {"DATABASE_URL": url})
    # credentials written in the file itself are refused, and the refusal does not repeat them
    inline = _app(tmp_path / "inline", "pg", f'kv.users = "{closed}"\n', {"users": "kv"})[1]["kv.users"]
    _attempt(witness, "inline", inline.resolved_url)
    _witnessed(witness, "Connection refused", "no_such_db", "carries credentials", "reachable", "carries a secret")
    assert not witness.leaks(), "\n".join(witness.leaks())


@pytest.fixture
def guarded_redis() -> Iterator[str]:
    """A Redis of this test's own that wants another password than the one given: AUTH fails."""
    from servers import spawn
    from servers.redis import _program

    port = free_port()
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--requirepass", "the-right-one"]
    server = spawn("redis-guarded", [_program(), *args], port)
    yield f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?timeout=2"
    server.stop()


def test_redis_passwords(witness: Witness, tmp_path: Path, redis_server: Server, guarded_redis: str) -> None:
    server = os.environ["OVERCAST_TEST_REDIS_URL"]
    real = server.replace("redis://", f"redis://:{REDIS_PASSWORD}@")  # no password set there: accepted
    closed = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0?timeout=1"
    resources = 'kv.users = "${REDIS_URL}"\ncache.sessions = "${REDIS_URL}"\nqueue.jobs = "${REDIS_URL}"\n'
    kinds = {"users": "kv", "sessions": "cache", "jobs": "queue"}
    for label, url in (("closed", closed), ("real", real), ("auth", guarded_redis)):
        _run(witness, tmp_path / label, "rd", resources, kinds, {"REDIS_URL": url})
    # the password named by an option (password_env) too
    named = f'cache.sessions = "{server}?password_env=REDIS_SECRET"\n'
    _run(witness, tmp_path / "named", "rd", named, {"sessions": "cache"}, {"REDIS_SECRET": REDIS_PASSWORD})
    _witnessed(witness, "Connection refused", "invalid username-password pair", "every resource is reachable")
    assert not witness.leaks(), "\n".join(witness.leaks())


def _azure_connection(port: int | None, base: str | None = None) -> str:
    if base is not None:  # Azurite's own, with a key it does not know
        parts = [p for p in base.split(";") if p and not p.startswith("AccountKey=")]
        return ";".join([*parts, f"AccountKey={AZURE_KEY}"])
    where = f"http://127.0.0.1:{port}/devstoreaccount1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURE_KEY};"
        f"BlobEndpoint={where};QueueEndpoint={where};TableEndpoint={where};"
    )


def test_azure_account_keys(witness: Witness, tmp_path: Path, azurite: Server) -> None:
    cases = {
        "closed": _azure_connection(free_port()),
        "wrong-key": _azure_connection(None, os.environ["AZURE_STORAGE_CONNECTION_STRING"]),
        "malformed": f"AccountKey={AZURE_KEY};BlobEndpoint=::not a url::;Junk",
    }
    resources = (
        'kv.users = "azuretables://users?connection_env=SECRET_STORAGE&timeout=2"\n'
        'bucket.avatars = "azblob://avatars?connection_env=SECRET_STORAGE&timeout=2"\n'
        'queue.jobs = "azqueue://jobs?connection_env=SECRET_STORAGE&timeout=2"\n'
    )
    kinds = {"users": "kv", "avatars": "bucket", "jobs": "queue"}
    for label, conn in cases.items():
        _run(witness, tmp_path / label, "az", resources, kinds, {"SECRET_STORAGE": conn})
    _witnessed(witness, "Connection refused", "authenticate")
    assert not witness.leaks(), "\n".join(witness.leaks())


def test_aws_keys_in_the_environment(witness: Witness, tmp_path: Path, moto_server: Server) -> None:
    resources = (
        'kv.users = "dynamodb://leaky-users?timeout=2"\nbucket.avatars = "s3://leaky-avatars?timeout=2"\n'
        'queue.jobs = "sqs://leaky-jobs?timeout=2"\nsecret.mail = "secretsmanager://leaky-mail?timeout=2"\n'
    )
    kinds = {"users": "kv", "avatars": "bucket", "jobs": "queue", "mail": "secret"}
    keys = {"AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_SESSION_TOKEN": AWS_TOKEN}
    for label, url in (("closed", f"http://127.0.0.1:{free_port()}"), ("moto", os.environ["AWS_ENDPOINT_URL"])):
        _run(witness, tmp_path / label, "aws", resources, kinds, {**keys, "AWS_ENDPOINT_URL": url})
    _witnessed(witness, "Could not connect", "leaky-users")
    assert not witness.leaks(), "\n".join(witness.leaks())


def test_momento_api_key(witness: Witness, tmp_path: Path) -> None:
    cases = {
        "v1": "momento://sessions?timeout=1",
        "v2": f"momento://sessions?timeout=1&endpoint=127.0.0.1:{free_port()}",
    }
    for label, url in cases.items():
        _run(
            witness,
            tmp_path / label,
            "mm",
            f'cache.sessions = "{url}"\n',
            {"sessions": "cache"},
            {"MOMENTO_API_KEY": MOMENTO_KEY},
        )
    _witnessed(witness, "MOMENTO_API_KEY", spans=False)  # refused before any call
    assert not witness.leaks(), "\n".join(witness.leaks())


def test_secret_values(witness: Witness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value read through ``app.secret`` and then logged by the app (a mistake, but a common
    one) is redacted from the lines Overcast's log handler writes, and shows nowhere else."""
    import io

    from overcast.telemetry import logs

    monkeypatch.setenv("MAIL_API_KEY", APP_SECRET)
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    app, handles = _app(tmp_path, "local", "", {"mail-api-key": "secret"})
    written = io.StringIO()
    handler = logs.install(target="local", cloud="local", level=logging.DEBUG)
    handler.setStream(written)  # type: ignore[attr-defined]
    try:
        assert handles["secret.mail-api-key"].sync.get() == APP_SECRET
        said = logging.getLogger(APP_LOGGER)
        said.warning("calling the mail API with key %s", APP_SECRET)
        said.error(f"the key as an f-string: {APP_SECRET}")
        try:
            raise RuntimeError(f"mail API refused key {APP_SECRET}")
        except RuntimeError:
            said.exception("sending failed")
    finally:
        logging.getLogger().removeHandler(handler)
    witness.add("overcast's log handler", written.getvalue())
    _exercise(witness, app, {"secret.mail-api-key": handles["secret.mail-api-key"]}, results=False)
    _doctor(witness, tmp_path, "local", {"MAIL_API_KEY": APP_SECRET})
    _witnessed(witness, "calling the mail API with key", "mail API refused key", "every resource is reachable")
    assert not witness.leaks(), "\n".join(witness.leaks())


def test_event_grid_token(witness: Witness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhook's token: never in its start-up line, nor in a refusal of a wrong one."""
    sys.path.append(str(Path(__file__).parents[1] / "providers" / "azure"))
    from azf_support import Context, Worker, host_response, http_request

    from overcast.providers.azure import function_app

    monkeypatch.setenv("OVERCAST_EVENTS_TOKEN", EVENTS_TOKEN)
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    app, _ = _app(tmp_path, "local", "", {})
    worker = Worker(function_app(app, event_grid={"storage": lambda event: None}, webhook_auth_level="anonymous"))
    try:
        for given in (f"Bearer {EVENTS_TOKEN[:-1]}", f"Bearer {EVENTS_TOKEN}x", "Bearer"):
            request = http_request(
                "POST",
                "https://x/eventgrid/storage",
                headers={"authorization": given},
                body=b"[]",
                route_params={"name": "storage"},
            )
            out = host_response(worker.call("eventgrid", request, Context("eventgrid")))
            assert out["status"] == 401
            witness.add("webhook reply", out)
    finally:
        worker.close()
    _witnessed(witness, "OVERCAST_EVENTS_TOKEN", "not this app's", spans=False)
    assert not witness.leaks(), "\n".join(witness.leaks())


ACCOUNT = "pusher@p.iam.gserviceaccount.com"


def test_cloud_run_bearer_tokens(witness: Witness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused OIDC token is a credential too (for its own audience): not echoed, not logged."""
    import json
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from asgi_support import call
    from overcast.providers.gcp import cloud_run_app
    from overcast.providers.gcp.oidc import GoogleOIDCVerifier

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="g1", alg="RS256")
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "iat": now, "email": ACCOUNT, "email_verified": True}

    def sign(aud: str, exp: int, kid: str = "g1") -> str:
        return jwt.encode({**claims, "aud": aud, "exp": exp}, key, "RS256", headers={"kid": kid})

    here = "https://here.run.app"
    tokens = [sign("https://elsewhere.run.app", now + 600), sign(here, now - 600), sign(here, now + 600, "k9")]
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    app, _ = _app(tmp_path, "local", "", {})
    verifier = GoogleOIDCVerifier(here, emails=[ACCOUNT], jwks={"keys": [jwk]})
    asgi = cloud_run_app(app, verifier=verifier)
    for index, token in enumerate(tokens):
        SECRETS[f"OIDC token {index}"] = token.split(".")[2]  # its signature: what makes it a credential
        status, body = call(asgi, "POST", "/_overcast/pubsub", b"{}", {"authorization": f"Bearer {token}"})
        assert status == 401
        witness.add("cloud run reply", body.decode())
    try:
        _witnessed(witness, "refused delivery", "token rejected", spans=False)
        assert not witness.leaks(), "\n".join(witness.leaks())
    finally:
        for index in range(len(tokens)):
            SECRETS.pop(f"OIDC token {index}")
