"""A demo app and a real ``overcast dev`` process for the console's tests (HTTP and browser)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

import overcast

#: the value of the demo app's secret: no console page may ever contain it
SECRET_VALUE = "s3cr3t-never-shown-8f1d"

DEMO_APP = """
import overcast
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

app = overcast.App("console-demo")
users = app.kv("users")
switches = app.kv("switches")
files = app.bucket("files")
jobs = app.queue("jobs")
signups = app.topic("signups")
api_token = app.secret("api-token")


async def create_user(request):
    user = await request.json()
    await users.put(user["id"], user)
    await signups.publish({"id": user["id"]})
    return JSONResponse(user, status_code=201)


async def change_user(request):
    user = await request.json()
    await users.put(request.path_params["id"], user)
    return JSONResponse(user)


async def enqueue(request):
    await jobs.send(await request.json())
    return JSONResponse({"queued": True}, status_code=202)


app.http(Starlette(routes=[
    Route("/users", create_user, methods=["POST"]),
    Route("/users/{id}", change_user, methods=["PUT"]),
    Route("/jobs", enqueue, methods=["POST"]),
]))


@app.subscribe(signups)
async def welcome(event):
    await switches.put("welcomed-" + event.data["id"], {"id": event.data["id"]})


@app.subscribe(jobs, max_attempts=1)
async def work(event):
    if await switches.get("healed") is None:
        raise RuntimeError("not healed yet: the job goes to the dead letters")
    await switches.put("worked-" + event.data["job"], {"ok": True})


@app.schedule("rate(1 day)")
async def nightly():
    await switches.put("nightly-ran", {"ran": True})
"""


DEMO_TOML = """
[app]
entry = "app:app"

[targets.local]

[targets.aws]
region = "us-east-1"
kv.users = "dynamodb://demo-users"
bucket.files = "s3://demo-files"
queue.jobs = "sqs://demo-jobs"
topic.signups = "sns://demo-signups"
secret.api-token = "secretsmanager://demo"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_demo(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overcast.toml").write_text(DEMO_TOML)
    (folder / "app.py").write_text(textwrap.dedent(DEMO_APP))
    return folder


def start_overcast(
    folder: Path, *args: str, ready_path: str = "/_overcast/"
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start ``overcast ARGS FOLDER --port P`` and wait until it answers; the caller stops it."""
    port = free_port()
    out = folder / f"server-{port}.log"
    env = {**os.environ, "OVERCAST_DEV_RETRY_DELAY": "0.05", "PYTHONUNBUFFERED": "1", "API_TOKEN": SECRET_VALUE}
    env.pop("OVERCAST_TARGET", None)
    source = str(Path(overcast.__file__).resolve().parents[1])  # this checkout's overcast, from any folder
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "overcast", *args, str(folder), "--host", "127.0.0.1", "--port", str(port)]
    with out.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(proc, base + ready_path, out)
    except BaseException:
        stop(proc)
        raise
    return proc, base, out


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Ctrl-C the process group, then kill it if it does not end in ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


@contextmanager
def overcast_process(folder: Path, *args: str, ready_path: str = "/_overcast/") -> Iterator[tuple[str, Path]]:
    """``overcast ARGS FOLDER --port P`` as a real process; yields its base URL and its log file."""
    proc, base, out = start_overcast(folder, *args, ready_path=ready_path)
    try:
        yield base, out
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            stop(proc)


def _wait(proc: subprocess.Popen[bytes], url: str, out: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"overcast exited with {proc.returncode}: {out.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(f"overcast did not answer: {out.read_text()}") from None
            time.sleep(0.1)


def eventually(check: object, *, timeout: float = 10.0, interval: float = 0.1) -> object:
    """Call ``check`` until it returns something truthy (the value), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()  # type: ignore[operator]
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check}")
        time.sleep(interval)


def token_of(html: str) -> str:
    """The session token a console page carries (for forms)."""
    found = re.search(r'name="overcast-token" content="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


#: An app that lives through an outage of one Redis server: ``ledger`` is replicated from SQLite
#: to it, and ``send_mail`` (not critical) writes to ``outbox`` on it, so its deliveries wait in
#: a backlog while it is down. A replay fails (a "bug") until ``switches/mail-fixed`` exists.
OUTAGE_APP = """
import overcast
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

app = overcast.App("console-outage")
ledger = app.kv("ledger")
outbox = app.kv("outbox")
switches = app.kv("switches")
mails = app.queue("mails")


async def record(request):
    entry = await request.json()
    await ledger.put(entry["id"], entry)
    return JSONResponse(entry, status_code=201)


async def mail(request):
    await mails.send(await request.json())
    return JSONResponse({"queued": True}, status_code=202)


app.http(Starlette(routes=[Route("/ledger", record, methods=["POST"]), Route("/mails", mail, methods=["POST"])]))


@app.subscribe(mails, critical=False, depends_on=[outbox])
async def send_mail(event):
    if event.extensions.get("replay") and await switches.get("mail-fixed") is None:
        raise RuntimeError("template bug: fixed once switches/mail-fixed exists")
    await outbox.put(event.data["to"], event.data)
"""

OUTAGE_TOML = """
[app]
entry = "app:app"

[targets.local]
kv.outbox = "redis://127.0.0.1:{port}/0?timeout=0.3&retries=0"

[targets.local.kv.ledger]
primary = "sqlite:///.overcast/kv/ledger.db"
replicas = ["redis://127.0.0.1:{port}/1?timeout=0.3&retries=0"]
"""


def write_outage(folder: Path, redis_port: int) -> Path:
    """The outage app in ``folder``, its Redis member and dependency at ``redis_port``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "overcast.toml").write_text(OUTAGE_TOML.format(port=redis_port))
    (folder / "app.py").write_text(textwrap.dedent(OUTAGE_APP))
    return folder


def start_redis_at(port: int) -> object:
    """A Redis server (no persistence) on ``port``; ``.stop()`` ends it (a member down)."""
    from servers import find_program, spawn

    program = find_program("redis-server")
    assert program, "redis-server is missing: apt-get install -y redis-server"
    command = [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return spawn("console-redis", command, port)
