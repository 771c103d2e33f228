"""Hostile input into ``overcast dev``, a real process: raw HTTP/1.1 requests over a socket
(the recorded API Gateway requests' method, path, query, headers and body, mutated, then
written out byte for byte: NUL, non-ASCII, invalid UTF-8 and 300 KB values included), and
messages whose bodies are the recorded events of every cloud, mutated, sent to the app's
queue and delivered by the dev server's consumer.

The rules: every request gets an HTTP response (uvicorn's 400 for what is no HTTP, the
app's answer otherwise, 500 only for the app's own error, without a traceback) and the
server keeps serving; every message acknowledged by ``send`` is delivered to its handler.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hostile_support import FIXTURES, HOSTILE, examples, has_traceback, load, mutated, note
from hypothesis import given, settings

from overcast.providers.aws.lambda_http import adapter_for

# a failing example holding a 300 KB value is printed whole: hypothesis warns, and warnings are errors here
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import overcast

app = overcast.App("hostile-dev")
jobs = app.queue("jobs")
api = FastAPI()
app.http(api)
seen: list[str] = []


@app.subscribe(jobs)
async def work(event: overcast.CloudEvent) -> None:
    seen.append(event.id)


@api.post("/_test/send")
async def send(request: Request) -> dict:
    body = await request.body()
    return {"id": await jobs.send(json.loads(body))}


@api.get("/_test/seen")
async def delivered() -> list:
    return seen


@api.api_route("/boom", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def boom() -> None:
    raise RuntimeError("the app's own bug")


@api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def echo(path: str, request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"path": path, "url": str(request.url), "headers": dict(request.headers), "n": len(body)})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    folder = tmp_path_factory.mktemp("dev")
    (folder / "overcast.toml").write_text('[app]\nentry = "app:app"\n')
    (folder / "app.py").write_text("import json\n" + textwrap.dedent(APP))
    port = _free_port()
    out = folder / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OVERCAST_TARGET", None)
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "overcast", "dev", str(folder), "--port", str(port), "--no-reload"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"overcast dev exited: {out.read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/up", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"overcast dev did not answer: {out.read_text()}") from None
                time.sleep(0.1)
        yield port, out
        assert proc.poll() is None, f"overcast dev died: {out.read_text()[-3000:]}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _http_requests() -> list[dict[str, Any]]:
    out = []
    for path in sorted((FIXTURES / "aws").rglob("*.json")):
        event = load(path)
        adapter = adapter_for(event)
        if adapter is not None and adapter.name == "apigateway-rest":
            out.append(
                {
                    "method": event["httpMethod"],
                    "path": event.get("path") or "/",
                    "query": event.get("queryStringParameters") or {},
                    "headers": event.get("headers") or {},
                    "body": event.get("body") or "",
                }
            )
    return out


HTTP_REQUESTS = _http_requests()


def _bytes(value: Any) -> bytes:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are no UTF-8


def raw_request(request: dict[str, Any]) -> bytes:
    """A mutated request written out as HTTP/1.1, whatever it holds (the server must cope)."""
    query = request.get("query")
    pairs = query.items() if isinstance(query, dict) else ()
    qs = b"&".join(quote(_bytes(k), safe="").encode() + b"=" + _bytes(v) for k, v in pairs)
    path = _bytes(request.get("path"))
    target = path + (b"?" + qs if qs else b"")
    body = _bytes(request.get("body"))
    lines = [_bytes(request.get("method")) + b" " + target + b" HTTP/1.1"]
    headers = request.get("headers")
    for name, value in headers.items() if isinstance(headers, dict) else ():
        if value is None or name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue
        lines.append(_bytes(name) + b": " + _bytes(value))
    if not any(isinstance(k, str) and k.lower() == "host" for k in (headers if isinstance(headers, dict) else ())):
        lines.append(b"Host: example.com")  # as any HTTP/1.1 client sends (without one uvicorn answers 400)
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


#: the most a request's line and headers may hold under uvicorn (h11's max_incomplete_event_size)
HEAD_LIMIT = 16 * 1024


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, read until the server closes (or 20 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@HOSTILE
@given(mutated(HTTP_REQUESTS))
def test_every_request_gets_an_http_response(server: tuple[int, Path], case: Any) -> None:
    port, _ = server
    request, _ = case
    data = raw_request(request)
    try:
        reply = exchange(port, data)
    except ConnectionResetError:
        # a head over the server's limit (h11's 16 KiB), or a large body the app answered without
        # reading: the server replies and closes while the client still writes, and the kernel
        # resets the connection (the reply lost with it); a small request must be answered
        head, _, body = data.partition(b"\r\n\r\n")
        assert len(head) > HEAD_LIMIT or len(body) > 64 * 1024, data[:200]
        note("large request: reset after an early reply")
        return
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    status = int(reply[9:12])
    body = reply.partition(b"\r\n\r\n")[2]
    assert not has_traceback(body), body[:300]
    target = data.split(b"\r\n", 1)[0]
    assert status != 500 or b"boom" in target, (target[:200], body[:300])
    note(f"status {status}")


def test_the_server_still_answers(server: tuple[int, Path]) -> None:
    port, _ = server
    assert httpx.get(f"http://127.0.0.1:{port}/still/here", timeout=5).status_code == 200


def _documents() -> list[Any]:
    """The recorded events of every cloud, as message bodies."""
    paths = sorted((FIXTURES / "aws").rglob("*.json"))[:40] + sorted((FIXTURES / "azure").rglob("*.json"))
    paths += sorted((FIXTURES / "gcp").rglob("*-input.json"))[:20]
    return [load(p) for p in paths]


DOCUMENTS = _documents()


@settings(HOSTILE, max_examples=max(20, examples() // 4))
@given(mutated(DOCUMENTS))
def test_every_message_sent_is_delivered(server: tuple[int, Path], case: Any) -> None:
    port, log = server
    document, _ = case
    base = f"http://127.0.0.1:{port}"
    text = json.dumps(document).encode("utf-8", "surrogatepass")
    sent = httpx.post(f"{base}/_test/send", content=text, headers={"content-type": "application/json"}, timeout=20)
    if sent.status_code != 200:  # the app cannot send it (a lone surrogate is no JSON it can encode): said so
        assert sent.status_code in (400, 422, 500) and not has_traceback(sent.content)
        note(f"send answered {sent.status_code}")
        return
    message_id = sent.json()["id"]
    deadline = time.monotonic() + 20
    while message_id not in httpx.get(f"{base}/_test/seen", timeout=20).json():
        assert time.monotonic() < deadline, f"message {message_id} never delivered: {log.read_text()[-3000:]}"
        time.sleep(0.02)
    note("delivered")
