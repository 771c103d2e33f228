"""Errors as a user reads them, for every provider the conformance suites run: the
resource's prefix said once (never ``signups: SNS topic x: signups: SNS topic x: ...``), and
URLs shown as written (``redis://127.0.0.1:6379/0``, not ``127.0.0.1%3A6379``). Each
provider is asked for something that does not exist on its real server, and then pointed
at a port where nothing listens."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import overcast
from conformance.providers import CASES, Case
from overcast.errors import OvercastError
from overcast.resources.registry import family_of_scheme, open_resource

_OPEN = {
    "kv": overcast.open_kv,
    "bucket": overcast.open_bucket,
    "queue": overcast.open_queue,
    "topic": overcast.open_topic,
    "cache": overcast.open_cache,
    "secret": overcast.open_secrets,
}


def _calls(kind: str, resource: Any) -> list[Callable[[], Awaitable[Any]]]:
    """Ordinary calls on ``resource`` of ``kind``, after ``ping``."""
    if kind == "queue":
        return [lambda: resource.send({"a": 1}), lambda: resource.receive(wait=0)]
    if kind == "topic":
        return [lambda: resource.publish({"a": 1})]
    if kind == "secret":
        return [lambda: resource.get("missing-secret")]
    return [lambda: resource.get("k")]  # kv, bucket, cache


def _repeats(message: str) -> list[str] | None:
    """A run of ``: ``-separated parts said twice in a row, if any."""
    parts = message.split(": ")
    for size in range(1, len(parts) // 2 + 1):
        for start in range(len(parts) - 2 * size + 1):
            if parts[start : start + size] == parts[start + size : start + 2 * size]:
                return parts[start : start + size]
    return None


def _id(case: Case) -> str:
    return f"{case.kind}-{case.title or case.scheme}"


_LOOPBACK = re.compile(r"(127\.0\.0\.1|localhost):[0-9]+")


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _failures(kind: str, url: str) -> list[OvercastError]:
    """What ``ping`` and one ordinary call raise on ``url``, opened as an App handle names it."""
    try:
        resource = open_resource(kind, url, name="signups")
    except OvercastError as exc:  # a client that connects when it is made (Redis Cluster's)
        return [exc]
    found = []
    for call in [resource.ping, *_calls(kind, resource)]:
        try:
            asyncio.run(asyncio.wait_for(call(), 60))
        except OvercastError as exc:
            found.append(exc)
    return found


def _check(message: str, url: str) -> None:
    assert _repeats(message) is None, message
    assert message.count("signups:") <= 1, message
    assert "%3A" not in message, message  # a port or an endpoint, as written


def _url(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if case.server:
        request.getfixturevalue(case.server)
    return case.url(tmp_path, f"{case.kind}-{uuid.uuid4().hex[:10]}")


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_not_found_says_its_prefix_once(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = _url(case, tmp_path, request)
    for exc in _failures(case.kind, url):
        _check(str(exc), url)


def _fails_fast(case: Case) -> bool:
    """A provider with a real server whose client gives up on a dead port within seconds. The
    Google clients retry an unreachable emulator until their deadline (minutes), and offer
    no option to shorten it; their errors are checked against the running emulators above."""
    family = family_of_scheme(case.scheme)
    return case.server is not None and (family is None or family.name != "gcp")


@pytest.mark.parametrize("case", [c for c in CASES if _fails_fast(c)], ids=_id)
def test_unavailable_says_its_prefix_once(
    case: Case, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _url(case, tmp_path, request)
    dead = f"127.0.0.1:{_dead_port()}"
    for name, value in os.environ.items():  # every client of this server pointed at the dead port
        if _LOOPBACK.search(value):
            monkeypatch.setenv(name, _LOOPBACK.sub(dead, value))
    moved = _LOOPBACK.sub(dead, url)
    family = family_of_scheme(case.scheme)
    if family is not None and family.name == "azure":  # the SDK's backoff waits minutes by default
        moved += ("&" if "?" in moved else "?") + "retries=0"
    failures = _failures(case.kind, moved)
    assert failures, f"nothing failed on {moved}"
    for exc in failures:
        _check(str(exc), moved)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_repr_shows_the_url_as_written(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = _url(case, tmp_path, request)  # ports, emulator hosts, endpoints, absolute paths
    resource = _OPEN[case.kind](url)
    try:
        assert url in repr(resource), (url, repr(resource))
    finally:
        resource.close()


def test_an_azure_endpoint_the_sdk_refuses_is_a_config_error_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from overcast.errors import ConfigError

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    url = "azuretables://users?endpoint=http://127.0.0.1:10002/devstoreaccount1"  # a token over plain HTTP
    with pytest.raises(ConfigError, match="HTTPS") as raised:
        open_resource("kv", url, name="users")
    assert url in str(raised.value)
