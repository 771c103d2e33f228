"""``overcast.toml`` and the environment → the provider URL of every resource.

```toml
[app]
entry = "app:app"                    # what `overcast dev` / `run` serve

[targets.local]                      # the default target: embedded, nothing to install
[targets.aws]
cloud = "aws"                        # where the code runs: aws, gcp, azure or local
region = "us-east-1"                 # target options: see TARGET_OPTIONS
defaults.kv = "dynamodb://{app}-{name}"
kv.users = "dynamodb://users-demo-users"
kv.sessions = "${DATABASE_URL}"      # a URL the hosting platform sets (may carry credentials)
```

A key a target does not know is an error naming the file and line, with the closest
known key. ``cloud`` may be left out when every resource's provider agrees on one
(DynamoDB → ``aws``; embedded, Redis, PostgreSQL and Momento belong to no cloud), or
when the target is named after its cloud.

The target is ``OVERCAST_TARGET`` (``local`` when unset). A resource is resolved,
first match wins, from the environment variable ``OVERCAST_<KIND>_<NAME>``
(``OVERCAST_KV_USERS``), the target's ``<kind>.<name>``, the target's
``defaults.<kind>`` template (``{app}`` and ``{name}`` filled in), and for the
``local`` target the embedded defaults below. Relative paths in ``sqlite:`` and
``file:`` URLs are relative to the folder holding ``overcast.toml``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .resources.registry import CLOUDS, KINDS, cloud_of
from .resources.url import ResourceURL

__all__ = ["CONFIG_FILE", "TARGET_OPTIONS", "Config", "Target", "find_config", "load_config"]

CONFIG_FILE = "overcast.toml"
DEFAULT_TARGET = "local"

#: Embedded providers: what a resource uses on the local target unless named.
LOCAL_DEFAULTS: dict[str, str] = {
    "kv": "sqlite:///.overcast/kv/{name}.db",
    "bucket": "file:///.overcast/buckets/{name}",
    "queue": "sqlite:///.overcast/queues/{name}.db",
    "topic": "sqlite:///.overcast/topics/{name}.db",
    "cache": "memory://{name}",
    "secret": "env://",
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
#: ``${VARIABLE}``: the whole URL comes from the environment when the resource is opened.
_FROM_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

#: The options a ``[targets.NAME]`` table may set besides its resources and ``defaults``.
TARGET_OPTIONS: dict[str, str] = {
    "cloud": "where the code runs: aws, gcp, azure or local",
    "region": "the cloud region (AWS, and the default for providers that take one)",
    "project": "the Google Cloud project",
    "location": "the Google Cloud or Azure location",
}


def env_var(kind: str, name: str) -> str:
    """The environment variable that overrides one resource's URL."""
    return f"OVERCAST_{kind.upper()}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"


@dataclass(frozen=True)
class Target:
    """One ``[targets.NAME]`` table."""

    name: str
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: ``aws``, ``gcp``, ``azure``, ``local``, or None when nothing says (see the module's docstring)
    cloud: str | None = None

    @property
    def embedded(self) -> bool:
        return self.name == DEFAULT_TARGET or self.cloud == "local"


@dataclass(frozen=True)
class Config:
    """A loaded ``overcast.toml`` (or the empty default when there is none)."""

    path: Path | None
    base_dir: Path
    entry: str | None = None
    targets: dict[str, Target] = field(default_factory=dict)

    def target(self, name: str | None = None) -> Target:
        """The target ``name``, else ``OVERCAST_TARGET``, else ``local``."""
        name = name or os.environ.get("OVERCAST_TARGET") or DEFAULT_TARGET
        if name in self.targets:
            return self.targets[name]
        if name == DEFAULT_TARGET:
            return Target(DEFAULT_TARGET, cloud="local")
        where = f" in {self.path}" if self.path else " (no overcast.toml found)"
        known = ", ".join(sorted({DEFAULT_TARGET, *self.targets}))
        raise ConfigError(f"unknown target {name!r}{where}; known targets: {known}")

    def url_for(self, kind: str, name: str, *, app: str, target: str | None = None) -> ResourceURL:
        """Resolve the provider URL of resource ``name`` of ``kind``."""
        tgt = self.target(target)
        raw = os.environ.get(env_var(kind, name))
        if raw is not None:
            return ResourceURL.parse(raw, base_dir=self.base_dir, credentials=True)
        raw = tgt.resources.get(kind, {}).get(name)
        variable = _FROM_ENV.match(raw) if raw is not None else None
        if variable is not None:
            value = os.environ.get(variable.group(1))
            if not value:
                raise ConfigError(
                    f"{kind} {name!r} on target {tgt.name!r} takes its URL from ${{{variable.group(1)}}} "
                    f"({self.path or CONFIG_FILE}), which is not set in the environment"
                )
            return ResourceURL.parse(value, base_dir=self.base_dir, credentials=True)
        if raw is None:
            template = tgt.defaults.get(kind) or (LOCAL_DEFAULTS[kind] if tgt.embedded else None)
            if template is None:
                raise ConfigError(
                    f"{kind} {name!r} has no provider on target {tgt.name!r}: set {kind}.{name} "
                    f"or defaults.{kind} under [targets.{tgt.name}] in {self.path or CONFIG_FILE}"
                )
            raw = template.replace("{app}", app).replace("{name}", name)
        return ResourceURL.parse(raw, base_dir=self.base_dir)


def find_config(start: Path) -> Path | None:
    """The nearest ``overcast.toml`` in ``start`` or a folder above it."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | str | None = None, *, start: Path | None = None) -> Config:
    """Load ``path``, or the nearest ``overcast.toml`` above ``start`` (default: cwd)."""
    if path is None and os.environ.get("OVERCAST_CONFIG"):
        path = os.environ["OVERCAST_CONFIG"]
    if path is None:
        found = find_config(start or Path.cwd())
        if found is None:
            return Config(None, (start or Path.cwd()).resolve())
        path = found
    path = Path(path).resolve()
    if path.is_dir():
        path = path / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    import tomllib  # only when a file is read: it is not free to import

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_of(str(exc))
        raise ConfigError(f"{path}: line {line}: {exc.msg if hasattr(exc, 'msg') else exc}") from exc
    return _parse(data, path, text)


def _line_of(message: str) -> str:
    match = re.search(r"line (\d+)", message)
    return match.group(1) if match else "?"


def _parse(data: dict[str, Any], path: Path, text: str) -> Config:
    unknown = set(data) - {"app", "targets"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level table(s) {', '.join(sorted(unknown))}; expected [app] and [targets.*]"
        )
    app = data.get("app", {})
    if not isinstance(app, dict):
        raise ConfigError(f"{path}: [app] must be a table")
    entry = app.get("entry")
    if entry is not None and (not isinstance(entry, str) or ":" not in entry):
        raise ConfigError(f"{path}: [app] entry must be 'module:attribute', got {entry!r}")
    targets: dict[str, Target] = {}
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, dict):
        raise ConfigError(f"{path}: targets must be tables, [targets.NAME]")
    for tname, table in raw_targets.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [targets.{tname}] must be a table")
        targets[tname] = _parse_target(tname, table, path, text)
    return Config(path, path.parent, entry, targets)


def _parse_target(tname: str, table: dict[str, Any], path: Path, text: str) -> Target:
    resources: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key in KINDS:
            resources[key] = _parse_resources(tname, key, value, path)
        elif key == "defaults":
            if not isinstance(value, dict):
                raise ConfigError(f'{path}: [targets.{tname}] defaults must be a table of kind = "url"')
            for kind, url in value.items():
                where = f"{path}: [targets.{tname}] defaults.{kind}"
                if kind not in KINDS:
                    raise ConfigError(f"{where}: unknown kind; kinds are {', '.join(KINDS)}")
                if not isinstance(url, str):
                    raise ConfigError(f"{where} must be a provider URL string")
                _check_url(url.replace("{app}", "app").replace("{name}", "name"), where)
                defaults[kind] = url
        elif key in TARGET_OPTIONS:
            options[key] = value
        else:
            raise ConfigError(_unknown_key(tname, key, path, text))
    cloud = _target_cloud(tname, options.get("cloud"), resources, defaults, f"{path}: [targets.{tname}]")
    return Target(tname, resources, defaults, options, cloud)


def _parse_resources(tname: str, kind: str, value: object, path: Path) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: [targets.{tname}] {kind} must be a table of name = "url"')
    found: dict[str, str] = {}
    for rname, url in value.items():
        where = f"{path}: [targets.{tname}] {kind}.{rname}"
        if isinstance(url, dict):
            raise ConfigError(f"{where}: replicated resources (primary/replicas) are not available yet")
        if not isinstance(url, str):
            raise ConfigError(f"{where} must be a provider URL string")
        if "${" in url:
            if not _FROM_ENV.match(url):
                raise ConfigError(f'{where}: a URL from the environment is the whole value, "${{VARIABLE}}"')
        else:
            _check_url(url, where)
        found[rname] = url
    return found


def _unknown_key(tname: str, key: str, path: Path, text: str) -> str:
    """The error for a key no target takes: where it is, and what was probably meant."""
    import difflib

    known = sorted({*TARGET_OPTIONS, *KINDS, "defaults"})
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{path}:{_line_in_table(text, f'targets.{tname}', key)}: [targets.{tname}] has no key {key!r}{hint} "
        f"A target takes {', '.join(sorted(TARGET_OPTIONS))}, defaults.KIND and KIND.NAME "
        f"(kinds: {', '.join(KINDS)})"
    )


def _line_in_table(text: str, table: str, key: str) -> int | str:
    """The line where ``key`` is set inside ``[table]`` (tomllib reports no positions)."""
    inside = False
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*[.=]")
    dotted = re.compile(rf"^\s*{re.escape(table)}\.{re.escape(key)}\s*[.=]")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\[\]]+)\]", line)
        if header:
            inside = header.group(1).strip().replace(" ", "") == table
            continue
        if (inside and pattern.match(line)) or dotted.match(line):
            return number
    return "?"


def _target_cloud(
    tname: str, given: object, resources: dict[str, dict[str, str]], defaults: dict[str, str], where: str
) -> str | None:
    """The cloud a target runs on: ``cloud = ...``, else what every resource's provider agrees on."""
    clouds = (*CLOUDS, "local")
    if given is not None:
        if given not in clouds:
            raise ConfigError(f"{where} cloud = {given!r}: the clouds are {', '.join(clouds)}")
        return str(given)
    named: dict[str, list[str]] = {}
    urls = [(f"{k}.{n}", k, u) for k, table in resources.items() for n, u in table.items()]
    urls += [(f"defaults.{k}", k, u) for k, u in defaults.items()]
    for label, kind, url in urls:
        scheme = url.partition("://")[0].lower()
        cloud = cloud_of(kind, scheme) if "://" in url else None
        if cloud is not None:
            named.setdefault(cloud, []).append(f"{label} ({scheme})")
    if len(named) > 1:
        mixed = "; ".join(f"{cloud}: {', '.join(labels)}" for cloud, labels in sorted(named.items()))
        raise ConfigError(
            f'{where} mixes clouds ({mixed}); say where the code runs with cloud = "aws", "gcp" or "azure"'
        )
    if named:
        return next(iter(named))
    if tname == DEFAULT_TARGET:
        return "local"
    return tname if tname in CLOUDS else None


def _check_url(url: str, where: str) -> None:
    try:
        ResourceURL.parse(url)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def check_resource_name(kind: str, name: object) -> str:
    """Resource names become table, bucket and queue names on every cloud: keep them plain."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{kind} name {name!r} must start with a letter and hold only letters, digits, '-' and '_' "
            "(at most 63 characters)"
        )
    return name
