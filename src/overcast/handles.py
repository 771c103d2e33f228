"""What ``app.kv(name)`` and its siblings return: a declared resource, opened on first use.

A handle is declared at import time, before the target is known; the provider is
resolved from ``overcast.toml`` and opened the first time an operation runs. Each
handle keeps the access the code asked for (``allow``) and the access it used
(``used``), so deployment can grant least privilege.
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from . import telemetry
from .config import LOCAL_DEFAULTS
from .errors import ConfigError
from .resources.base import Resource
from .resources.forwarding import (
    ForwardingBlobStore,
    ForwardingCache,
    ForwardingKeyValueStore,
    ForwardingQueue,
    ForwardingSecretStore,
    ForwardingTopic,
    bind_direct,
    unbind_direct,
)
from .resources.records import replace
from .resources.registry import open_resource
from .resources.secrets import Secret
from .resources.url import ResourceURL

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "BacklogQueueHandle",
    "BacklogStateHandle",
    "BucketHandle",
    "CacheHandle",
    "Handle",
    "KVHandle",
    "QueueHandle",
    "SecretHandle",
    "TopicHandle",
]

ACCESS = frozenset({"read", "write"})
R = TypeVar("R", bound=Resource)


class Handle(Protocol):
    kind: str
    resource_name: str
    allow: frozenset[str]
    used: set[str]

    def resolved_url(self) -> ResourceURL: ...


class _Declared(Generic[R]):
    """Mixin: lazy opening through the app, and the access record."""

    kind: str

    def _declare(self, app: App, name: str, allow: frozenset[str]) -> None:
        bad = set(allow) - ACCESS
        if bad:
            raise ConfigError(f"{self.kind} {name!r}: allow takes 'read' and 'write', not {sorted(bad)}")
        self.app = app
        self.resource_name = name
        self.allow = frozenset(allow)
        self.used: set[str] = set()
        self._allowed: frozenset[str] | None = None
        self._opened: R | None = None
        self._open_lock = threading.Lock()

    def resolved_url(self) -> ResourceURL:
        """The provider URL this resource resolves to on the app's current target."""
        return self.app.url_for(self.kind, self.resource_name)

    @property
    def provider(self) -> R:
        """The store this handle reaches on the current target, opened on first use: for what
        only that provider has (a replicated store's ``repair()`` and ``health()``)."""
        return self._target()

    def _target(self) -> R:
        opened = self._opened
        if opened is None:
            with self._open_lock:
                opened = self._opened
                if opened is None:
                    opened = self._opened = self._open()
                    for group in ("always", *self.used):  # what is recorded needs no frame of ours
                        bind_direct(self, opened, group)
        return opened

    def _open(self) -> R:
        url = self.resolved_url()
        resource: R = telemetry.timed(open_resource(self.kind, url, name=self.resource_name))
        self.location = url
        return resource

    def _used(self, access: str) -> None:
        allowed = self._allowed
        if allowed is None:
            allowed = self._allowed = self._target_allow()
        if access not in allowed:
            where = "" if allowed is self.allow else f" on target {self.app.config.target().name!r} (overcast.toml)"
            raise ConfigError(
                f"{self.kind} {self.resource_name!r} was declared with allow={sorted(allowed)}{where} "
                f"but the code needs {access!r}"
            )
        if access in self.used:
            return
        self.used.add(access)
        opened = self._opened
        if opened is not None:  # recorded: this access's hooks now reach the provider directly
            with self._open_lock:
                if self._opened is opened:
                    bind_direct(self, opened, access)

    def _target_allow(self) -> frozenset[str]:
        """The access on the current target: ``allow`` of the resource in ``overcast.toml``, else the code's."""
        from .config import declared_allow

        if self.kind == "secret":
            return self.allow
        found = declared_allow(self.app.config.target(), self.kind, self.resource_name)
        return self.allow if found is None else found

    def reset(self) -> None:
        """Forget the opened provider, so the next use resolves the target again."""
        with self._open_lock:
            opened, self._opened = self._opened, None
            self._allowed = None
            unbind_direct(self)
        if opened is not None:
            opened.close()


class KVHandle(_Declared[Any], ForwardingKeyValueStore):
    def __init__(self, app: App, name: str, allow: frozenset[str] = ACCESS) -> None:
        ForwardingKeyValueStore.__init__(self, None, name=name)
        self._declare(app, name, allow)


class BucketHandle(_Declared[Any], ForwardingBlobStore):
    def __init__(self, app: App, name: str, allow: frozenset[str] = ACCESS) -> None:
        ForwardingBlobStore.__init__(self, None, name=name)
        self._declare(app, name, allow)


class QueueHandle(_Declared[Any], ForwardingQueue):
    def __init__(self, app: App, name: str, allow: frozenset[str] = ACCESS) -> None:
        ForwardingQueue.__init__(self, None, name=name)
        self._declare(app, name, allow)
        #: set by ``@app.subscribe(queue, max_attempts=N)``: the consumer's dead-letter limit,
        #: passed to the provider as its ``max_attempts`` option.
        self.consumer_max_attempts: int | None = None

    def resolved_url(self) -> ResourceURL:
        url = super().resolved_url()
        wanted = self.consumer_max_attempts
        if wanted is None:
            return url
        given = url.option("max_attempts")
        if given is None:
            return replace(url, options={**url.options, "max_attempts": str(wanted)})
        if given != str(wanted):
            raise ConfigError(
                f"queue {self.resource_name!r}: its URL sets max_attempts={given} but its subscriber asks for "
                f"max_attempts={wanted}; keep one"
            )
        return url


#: deliveries a backlog queue allows before its provider would dead-letter by itself: never in
#: practice (the replayer counts failures itself; those during an outage do not count)
BACKLOG_MAX_ATTEMPTS = 1000


class BacklogQueueHandle(QueueHandle):
    """The queue of a backlog of parked work (declared by ``@app.subscribe(..., critical=False)``
    and ``@app.deferrable``), resolved like any queue of the target, with two differences: it
    never dead-letters by itself, and on a cloud target that names no provider for it
    (no ``queue.NAME``, no ``defaults.queue``) it is a queue of the cloud's own queue service
    named ``APP-NAME``, beside the app's other resources."""

    #: its replayer moves an item that keeps failing to the dead letters itself (a plan grants it)
    writes_dead_letters = True

    def resolved_url(self) -> ResourceURL:
        return self.url_on(None)

    def url_on(self, target: str | None) -> ResourceURL:
        """Its provider URL on ``target`` (the current one by default): what a plan declares."""
        config = self.app.config
        try:
            url = config.url_for("queue", self.resource_name, app=self.app.name, target=target)
        except ConfigError:
            beside = self._on_cloud(target)
            if beside is None:
                raise
            url = beside
        else:
            url = _legal_unless_named(self.app, "queue", self.resource_name, target, url)
        return self._never_dead_lettering(url)

    def _on_cloud(self, target: str | None) -> ResourceURL | None:
        return _on_cloud(self.app, "queue", self.resource_name, target, "-")

    def _never_dead_lettering(self, url: ResourceURL) -> ResourceURL:
        """``url`` with the most deliveries its provider takes, else 0 where that means never
        (Pub/Sub, Azure); unchanged where its URL sets ``max_attempts`` itself."""
        if url.option("max_attempts") is not None:
            return url
        for limit in (str(BACKLOG_MAX_ATTEMPTS), "0"):
            candidate = replace(url, options={**url.options, "max_attempts": limit})
            try:
                open_resource("queue", candidate, name=self.resource_name).close()
            except ConfigError:
                continue
            return candidate
        return url


def _on_cloud(app: App, kind: str, name: str, target: str | None, joint: str) -> ResourceURL | None:
    """``kind`` ``name`` on the first service of ``kind`` of the target's cloud, named ``APP-NAME``
    in lowercase letters and digits joined by ``joint``; None where the target has no cloud."""
    from .resources.registry import family_of_cloud

    family = family_of_cloud(app.config.target(target).cloud)
    schemes = list(family.schemes.get(kind, {})) if family is not None else []
    if not schemes:
        return None
    slug = joint.join(re.findall(r"[a-z0-9]+", f"{app.name}-{name}".lower()))
    return _legal(kind, ResourceURL.parse(f"{schemes[0]}://{slug}"), name)


def _legal(kind: str, url: ResourceURL, name: str) -> ResourceURL:
    """``url`` with its name (the host) made one its provider takes, by the provider's own rule
    (``legal_name``: cut to the service's length with a hash of the whole name); unchanged
    where it is one already or the provider states no rule. The same in every process."""
    from .resources.registry import resolve

    rule = getattr(resolve(kind, url.scheme, resource=name), "legal_name", None)
    host = url.host if rule is None else rule(url.host)
    return url if host == url.host else replace(url, host=host)


def _legal_unless_named(app: App, kind: str, name: str, target: str | None, url: ResourceURL) -> ResourceURL:
    """A name from ``defaults.KIND`` (``{app}-{name}``) made legal like a derived one; a URL
    named for this resource itself (``KIND.NAME``, or its environment variable) is left as
    written: a name the user chose is refused with the provider's error, never changed."""
    from .config import env_var

    if os.environ.get(env_var(kind, name)) is not None:
        return url
    if app.config.target(target).resources.get(kind, {}).get(name) is not None:
        return url
    return _legal(kind, url, name)


class BacklogStateHandle(KVHandle):
    """Where the replayers of an app's backlogs keep their leases (one record per backlog):
    ``kv.NAME``, else ``defaults.kv``, else the cloud's own key-value service (named
    ``APPNAME``, letters and digits only, cut to the service's length with a hash where longer),
    else the embedded store."""

    def resolved_url(self) -> ResourceURL:
        return self.url_on(None)

    def url_on(self, target: str | None) -> ResourceURL:
        """Its provider URL on ``target`` (the current one by default): what a plan declares."""
        config = self.app.config
        try:
            url = config.url_for("kv", self.resource_name, app=self.app.name, target=target)
        except ConfigError:
            beside = _on_cloud(self.app, "kv", self.resource_name, target, "")
            if beside is not None:
                return beside
        else:
            return _legal_unless_named(self.app, "kv", self.resource_name, target, url)
        local = LOCAL_DEFAULTS["kv"].replace("{app}", self.app.name).replace("{name}", self.resource_name)
        return ResourceURL.parse(local, base_dir=config.base_dir)


class TopicHandle(_Declared[Any], ForwardingTopic):
    def __init__(self, app: App, name: str, allow: frozenset[str] = ACCESS) -> None:
        ForwardingTopic.__init__(self, None, name=name)
        self._declare(app, name, allow)


class CacheHandle(_Declared[Any], ForwardingCache):
    def __init__(self, app: App, name: str, allow: frozenset[str] = ACCESS) -> None:
        ForwardingCache.__init__(self, None, name=name)
        self._declare(app, name, allow)


class _SecretStoreHandle(_Declared[Any], ForwardingSecretStore):
    def __init__(self, app: App, name: str) -> None:
        ForwardingSecretStore.__init__(self, None, name=name)
        self._declare(app, name, frozenset({"read"}))


class SecretHandle(Secret):
    """``app.secret(name)``: one secret, read from the store the target names for it."""

    kind = "secret"

    def __init__(self, app: App, name: str) -> None:
        self._store = _SecretStoreHandle(app, name)
        super().__init__(self._store, name)
        self.resource_name = name
        self.allow = frozenset({"read"})

    @property
    def used(self) -> set[str]:
        return self._store.used

    def resolved_url(self) -> ResourceURL:
        return self._store.resolved_url()

    async def create(self) -> None:
        await self._store.create()

    async def ping(self) -> None:
        await self._store.ping()

    def reset(self) -> None:
        self._store.reset()
