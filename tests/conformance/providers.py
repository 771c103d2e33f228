"""Every provider the conformance suites run against, gathered from one module per family.

Each entry gives a fresh, isolated resource URL. ``suites()`` turns the list into one
test class per provider, plus one per provider reached through an App handle
(handles forward every operation and must keep every semantic).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import overcast
from overcast.providers.local.env_secrets import variable_names
from overcast.resources.registry import resolve
from overcast.resources.url import ResourceURL


@dataclass(frozen=True)
class Case:
    """One provider under the suites.

    Attributes:
        url: ``(tmp_path, unique name) -> URL`` of a new, isolated resource.
        server: the session fixture of the real server the provider talks to (``moto_server``,
            ``azurite``, ``firestore_emulator``, ...), started before ``url`` is called.
        set_secret: for secret stores, ``(url, name, value)`` stores a secret behind ``url``.
        title: the test class name's stem when one scheme appears twice (e.g. SQS FIFO).
        provider: ``"module:Class"`` of the class ``url`` opens when it is not the scheme's
            registered class (``sqs://NAME.fifo`` opens ``SQSFifoQueue``); its capabilities
            select the tests.
    """

    kind: str
    scheme: str
    url: Callable[[Path, str], str]
    server: str | None = None
    set_secret: Callable[[str, str, str], None] | None = None
    title: str | None = None
    provider: str | None = None


def _with_cache_ttl(url: str, cache_ttl: float | None) -> str:
    if cache_ttl is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}cache_ttl={cache_ttl:g}"


def set_secret(url: str, name: str, value: str) -> None:
    """Store a secret behind ``url`` the way its provider reads it."""
    parsed = ResourceURL.parse(url)
    if parsed.scheme == "memory":
        store: Any = overcast.open_secrets(url)
        store.set(name, value)
        return
    if parsed.scheme == "env":
        path = Path(parsed.option("file") or "")
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        variable = variable_names(name)[0]
        lines = [line for line in lines if not line.startswith(f"{variable}=")]
        lines.append(f"{variable}='{value}'")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    for case in CASES:
        if case.kind == "secret" and case.scheme == parsed.scheme and case.set_secret is not None:
            case.set_secret(url, name, value)
            return
    raise AssertionError(f"no way to set a secret for {url}")


def _discover() -> list[Case]:
    """Every family's cases: one module per family in ``families/``, and each module a
    third-party family names in the ``overcast.conformance`` entry-point group (``module``
    holding ``CASES``), so a new family adds its cases without a line changed here."""
    from importlib.metadata import entry_points

    from . import families

    modules = [f"{families.__name__}.{info.name}" for info in pkgutil.iter_modules(families.__path__)]
    modules += [ep.value for ep in entry_points(group="overcast.conformance")]
    found: list[Case] = []
    for module in modules:
        found.extend(importlib.import_module(module).CASES)
    return found


CASES: list[Case] = _discover()

_HANDLE = {"kv": "kv", "bucket": "bucket", "queue": "queue", "topic": "topic", "cache": "cache"}


def open_through_app(kind: str, url: str, config_dir: Path) -> Any:
    """Open ``url`` as ``App(...).<kind>(name)`` with an overcast.toml naming it."""
    name = "res"
    target = os.environ.get("OVERCAST_TARGET") or "local"
    path = config_dir / f"overcast-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(f'[targets.{target}]\n{kind}.{name} = "{url}"\n', encoding="utf-8")
    app = overcast.App("conformance")
    app.use_config(path)
    if kind == "secret":
        return app.secret(name).store
    return getattr(app, _HANDLE[kind])(name)


def suites(kind: str, base: type[Any]) -> Iterator[tuple[str, type[Any]]]:
    """``(class name, test class)`` for every provider of ``kind``, direct and through an App."""
    for case in CASES:
        if case.kind != kind:
            continue
        if case.provider is None:
            provider = resolve(kind, case.scheme, resource=f"conformance {kind}")
        else:
            module, _, attribute = case.provider.partition(":")
            provider = getattr(importlib.import_module(module), attribute)

        def make_url(
            self: Any, tmp_path: Path, request: pytest.FixtureRequest, case: Case = case
        ) -> Callable[..., str]:
            if case.server is not None:
                request.getfixturevalue(case.server)
            if kind == "secret":
                return lambda ttl: _with_cache_ttl(case.url(tmp_path, f"secret-{uuid.uuid4().hex[:10]}"), ttl)
            return lambda: case.url(tmp_path, f"{kind}-{uuid.uuid4().hex[:10]}")

        def via_app(self: Any, tmp_path: Path) -> Callable[[str], Any]:
            return lambda url: open_through_app(kind, url, tmp_path)

        def setter(self: Any) -> Callable[[str, str, str], None]:
            return set_secret

        title = case.title or case.scheme.capitalize()
        common = {"provider": provider, "make_url": pytest.fixture(make_url), "set_secret": pytest.fixture(setter)}
        yield f"Test{title}", type(f"Test{title}", (base,), dict(common))
        yield (
            f"Test{title}ViaApp",
            type(f"Test{title}ViaApp", (base,), {**common, "open_store": pytest.fixture(via_app)}),
        )
