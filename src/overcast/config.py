"""``overcast.toml`` and the environment → the provider URL of every resource.

```toml
[app]
entry = "app:app"                    # what `overcast dev` / `run` serve

[targets.local]                      # the default target: embedded, nothing to install
[targets.aws]
region = "us-east-1"                 # target options: free-form, read by providers and deploy
defaults.kv = "dynamodb://{app}-{name}"
kv.users = "dynamodb://users-demo-users"
```

The target is ``OVERCAST_TARGET`` (``local`` when unset). A resource is resolved,
first match wins, from the environment variable ``OVERCAST_<KIND>_<NAME>``
(``OVERCAST_KV_USERS``), the target's ``<kind>.<name>``, the target's
``defaults.<kind>`` template (``{app}`` and ``{name}`` filled in), and for the
``local`` target the embedded defaults below. Relative paths in ``sqlite:`` and
``file:`` URLs are relative to the folder holding ``overcast.toml``.

A URL may name environment variables, ``kv.users = "${DATABASE_URL}"``, read when the
resource is resolved; only there may it carry ``user:password@`` (hosting platforms set
such variables), and the credentials are split off, never shown. A target names its
cloud with ``cloud = "aws"``, else the cloud is inferred from its resources' schemes.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .resources.records import field, record
from .resources.registry import KINDS
from .resources.url import ResourceURL, checked_table, hide_userinfo

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CONFIG_FILE", "Config", "Target", "find_config", "load_config"]

CONFIG_FILE = "overcast.toml"
DEFAULT_TARGET = "local"

#: Embedded providers: what a resource uses on the local target unless named.
LOCAL_DEFAULTS: dict[str, str] = {
    "kv": "sqlite:///.overcast/kv/{name}.db",
    "bucket": "file://.overcast/buckets/{name}",
    "queue": "sqlite:///.overcast/queues/{name}.db",
    "topic": "sqlite:///.overcast/topics/{name}.db",
    "cache": "memory://{name}",
    "secret": "env://",
}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Target keys every target may hold; families add the options their providers read.
_CORE_KEYS = frozenset({"cloud", "region", "defaults", *KINDS, "existing", "function"})


def env_var(kind: str, name: str) -> str:
    """The environment variable that overrides one resource's URL."""
    return f"OVERCAST_{kind.upper()}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"


@record(frozen=True)
class Target:
    """One ``[targets.NAME]`` table."""

    name: str
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    path: Path | None = None
    #: ``"kind.name"`` -> what a resource's table form declares beside its URL:
    #: ``existing`` (bool), ``allow`` (frozenset), ``arn`` (str)
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.name == DEFAULT_TARGET or self.options.get("cloud") == "local"

    @cached_property
    def cloud(self) -> str | None:
        """``cloud =`` of the table, else the one cloud its resources' families agree on.

        Families that belong to no cloud (local, Redis, PostgreSQL, Momento) do not
        disagree; a target with no cloud-bound resource is the cloud it is named after,
        if a family is that cloud.
        """
        explicit = self.options.get("cloud")
        if explicit is not None:
            return str(explicit)
        from .resources.registry import family_of_cloud, family_of_scheme

        clouds: dict[str, list[str]] = {}
        elsewhere = {str(e) for e in self.options.get("existing", []) if isinstance(self.options["existing"], list)}
        elsewhere |= {key for key, settings in self.declared.items() if settings.get("existing")}
        urls = [(f"{k}.{n}", u) for k, table in self.resources.items() for n, u in table.items()]
        urls = [(where, url) for where, url in urls if where not in elsewhere]  # existing: may live on another cloud
        urls += [(f"defaults.{k}", u) for k, u in self.defaults.items()]
        for where, url in urls:
            if _VARIABLE.search(url):
                continue  # known only at run time
            family = family_of_scheme(url.partition("://")[0].lower())
            if family is not None and family.cloud is not None:
                clouds.setdefault(family.cloud, []).append(where)
        if len(clouds) > 1:
            named = "; ".join(f"{cloud}: {', '.join(found)}" for cloud, found in sorted(clouds.items()))
            raise ConfigError(
                f"{self.path or CONFIG_FILE}: [targets.{self.name}] mixes clouds ({named}); "
                'name the cloud it runs on with cloud = "...", and declare what lives on another cloud '
                'existing (kind.name = { url = "...", existing = true })'
            )
        if clouds:
            return next(iter(clouds))
        family = family_of_cloud(self.name)
        return family.cloud if family else None


@record(frozen=True)
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
            return Target(DEFAULT_TARGET)
        where = f" in {self.path}" if self.path else " (no overcast.toml found)"
        known = ", ".join(sorted({DEFAULT_TARGET, *self.targets}))
        raise ConfigError(f"unknown target {name!r}{where}; known targets: {known}")

    def url_for(self, kind: str, name: str, *, app: str, target: str | None = None) -> ResourceURL:
        """Resolve the provider URL of resource ``name`` of ``kind``."""
        tgt = self.target(target)
        raw = os.environ.get(env_var(kind, name))
        if raw is not None:  # from the environment, like ${VAR}: it may carry credentials
            return _from_environment(raw, f"{kind} {name!r} ({env_var(kind, name)})", self.path, self.base_dir)
        if raw is None:
            raw = tgt.resources.get(kind, {}).get(name)
            if raw is not None and _VARIABLE.search(raw):
                return _from_environment(raw, f"{kind} {name!r}", self.path, self.base_dir)
        if raw is None:
            template = tgt.defaults.get(kind) or (LOCAL_DEFAULTS[kind] if tgt.embedded else None)
            if template is None:
                raise ConfigError(
                    f"{kind} {name!r} has no provider on target {tgt.name!r}: set {kind}.{name} "
                    f"or defaults.{kind} under [targets.{tgt.name}] in {self.path or CONFIG_FILE}"
                )
            raw = template.replace("{app}", app).replace("{name}", name)
        return ResourceURL.parse(raw, base_dir=self.base_dir)


def _from_environment(raw: str, resource: str, path: Path | None, base_dir: Path) -> ResourceURL:
    """Fill ``${VAR}`` from the environment; credentials there are split off, never shown."""

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise ConfigError(
                f"{resource} in {path or CONFIG_FILE} reads the environment variable {match.group(1)}, which is not set"
            )
        return found

    url = _VARIABLE.sub(value, raw)
    try:  # user:password@ is kept in fields that str(), repr() and errors never show
        return ResourceURL.parse(url, base_dir=base_dir, credentials=True)
    except ConfigError as exc:
        raise ConfigError(f"{resource} (from {raw} in {path or CONFIG_FILE}): {exc}") from exc


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, safe to log."""
    return hide_userinfo(url)


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
    from pathlib import Path  # here, not with the module: declaring an App reads no file

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


def _parse(data: dict[str, Any], path: Path, text: str = "") -> Config:
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


def _parse_target(tname: str, table: dict[str, Any], path: Path, text: str = "") -> Target:
    resources: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    options: dict[str, Any] = {}
    declared: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key in KINDS:
            if not isinstance(value, dict):
                raise ConfigError(f'{path}: [targets.{tname}] {key} must be a table of name = "url"')
            for rname, url in value.items():
                where = f"{path}: [targets.{tname}] {key}.{rname}"
                if isinstance(url, dict):
                    located = f"{path}:{_line_of_key(text, tname, f'{key}.{rname}')}: [targets.{tname}] {key}.{rname}"
                    url, settings = _resource_table(key, rname, url, located)
                    if settings:
                        declared[f"{key}.{rname}"] = settings
                    if url is None:
                        continue
                if not isinstance(url, str):
                    raise ConfigError(f"{where} must be a provider URL string")
                if not _VARIABLE.search(url):
                    _check_url(url, where)
                resources.setdefault(key, {})[rname] = url
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
        else:
            if key not in _CORE_KEYS:
                _check_option(key, tname, path, text)
            options[key] = value
    return Target(tname, resources, defaults, options, path, declared)


#: the keys of a resource's table form besides a replicated resource's
_DECLARATION_KEYS = ("url", "arn", "existing", "allow")


def _resource_table(kind: str, name: str, table: dict[str, Any], where: str) -> tuple[str | None, dict[str, Any]]:
    """``{ url = "...", existing = true, allow = ["read"] }`` (or ``arn = "..."`` for ``url``, or a
    replicated resource's ``primary``/``replicas``): its URL and what it declares beside it."""
    settings: dict[str, Any] = {}
    rest = {k: v for k, v in table.items() if k not in ("existing", "allow")}
    if "existing" in table:
        if not isinstance(table["existing"], bool):
            raise ConfigError(f"{where}: existing must be true or false, got {table['existing']!r}")
        settings["existing"] = table["existing"]
    if "allow" in table:
        settings["allow"] = _allow(table["allow"], where)
    if "primary" in rest or "replicas" in rest:
        return _replicated(kind, name, rest, where), settings
    unknown = sorted(set(rest) - set(_DECLARATION_KEYS))
    if not rest and settings:
        return None, settings  # the URL from defaults.KIND, as for a resource not named
    if unknown or ("url" in rest) == ("arn" in rest):
        import difflib  # only on the error path

        close = [m for k in unknown for m in difflib.get_close_matches(k, [*_DECLARATION_KEYS, "primary"], n=1)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: a resource's table takes url (or arn), existing and allow, or a replicated "
            f"resource's primary and replicas; got {', '.join(sorted(table)) or 'nothing'}{hint}"
        )
    if "arn" in rest:
        if not settings.get("existing"):
            raise ConfigError(f"{where}: an arn names a resource that exists; add existing = true (or give its url)")
        settings["arn"] = str(rest["arn"])
        return _url_of_arn(kind, settings["arn"], where), settings
    if not isinstance(rest["url"], str):
        raise ConfigError(f"{where}: url must be a provider URL string")
    return rest["url"], settings


def _allow(raw: object, where: str) -> frozenset[str]:
    access = ("read", "write")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(a, str) and a in access for a in raw):
        raise ConfigError(
            f'{where}: allow must be a list of {" and ".join(access)}, e.g. allow = ["read"]; got {raw!r}'
        )
    return frozenset(raw)


def _url_of_arn(kind: str, arn: object, where: str) -> str:
    """The provider URL of a cloud's resource identifier, by the family that owns it."""
    from .resources.registry import families, load_attribute

    if isinstance(arn, str):
        for family in families().values():
            if family.arns is None:
                continue
            found = load_attribute(family.arns)(arn)
            if found is not None:
                found_kind, url = found
                if found_kind != kind:
                    raise ConfigError(f"{where}: arn {arn!r} names a {found_kind}, not a {kind}")
                return str(url)
    raise ConfigError(
        f"{where}: arn {arn!r} is no {kind} identifier an installed family knows "
        "(e.g. arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)"
    )


def _replicated(kind: str, name: str, table: dict[str, Any], where: str) -> str:
    """A replicated resource's table form as its URL (one string per resource everywhere)."""
    from .resilience.spec import replicated_url  # only when a file holds one

    if kind not in ("kv", "bucket"):
        raise ConfigError(f"{where}: replication is available for kv and bucket resources, not {kind}")
    return replicated_url(name, table, where)


def _check_option(key: str, tname: str, path: Path, text: str) -> None:
    """A key no family reads is a typo: name the file, the line and the closest known key."""
    from .resources.registry import families

    known = set(_CORE_KEYS) | {option for family in families().values() for option in family.target_options}
    if key in known:
        return
    import difflib  # only on the error path

    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"
    raise ConfigError(f"{path}:{_line_of_key(text, tname, key)}: [targets.{tname}] unknown key {key!r}{hint}")


def _line_of_key(text: str, tname: str, key: str) -> str:
    """The line of ``key`` in table ``[targets.tname]`` (tomllib reports no positions)."""
    table: str | None = None
    pattern = re.compile(rf"^\s*(?:\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*[=.]")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\[\]]+)\]", line)
        if header:
            table = header.group(1).strip().replace('"', "").replace(" ", "")
            continue
        dotted = re.compile(rf"^\s*targets\.{re.escape(tname)}\.{re.escape(key)}\s*[=.]")
        if (table == f"targets.{tname}" and pattern.match(line)) or (table is None and dotted.match(line)):
            return str(number)
    return "?"


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


# -- deployment settings (read by ``overcast plan``; the runtime ignores them) ---------------

#: ``[targets.NAME.function]`` keys and the types they take.
FUNCTION_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "memory": (int,),
    "timeout": (int,),
    "runtime": (str,),
    "architecture": (str,),
    "http": (str,),
    "log_retention_days": (int,),
    "concurrency": (int,),
    "environment": (dict,),
}


def existing_resources(target: Target) -> frozenset[tuple[str, str]]:
    """``existing = ["kv.users", ...]`` and ``kv.users = { ..., existing = true }``: resources
    the deployment references but does not create."""
    raw = target.options.get("existing", [])
    where = f"{target.path or CONFIG_FILE}: [targets.{target.name}] existing"
    if not isinstance(raw, list):
        raise ConfigError(f'{where} must be a list of "kind.name", e.g. existing = ["kv.users"]')
    found: set[tuple[str, str]] = set()
    for entry in raw:
        kind, dot, name = str(entry).partition(".")
        if not isinstance(entry, str) or not dot or kind not in KINDS or not name:
            raise ConfigError(f'{where}: {entry!r} is not "kind.name" with a kind of {", ".join(KINDS)}')
        found.add((kind, name))
    for key, settings in target.declared.items():
        if settings.get("existing"):
            kind, _, name = key.partition(".")
            found.add((kind, name))
    return frozenset(found)


def declared_allow(target: Target, kind: str, name: str) -> frozenset[str] | None:
    """``allow`` of a resource's table form on ``target``: the access it has there, instead of
    the code's ``allow=`` (None: the code's)."""
    allow: frozenset[str] | None = target.declared.get(f"{kind}.{name}", {}).get("allow")
    return allow


def declared_arn(target: Target, kind: str, name: str) -> str | None:
    """``arn`` of a resource's table form on ``target``, as written."""
    arn: str | None = target.declared.get(f"{kind}.{name}", {}).get("arn")
    return arn


def function_settings(target: Target) -> dict[str, Any]:
    """``[targets.NAME.function]``: memory, timeout, runtime, ... of the deployed function, checked."""
    where = f"{target.path or CONFIG_FILE}: [targets.{target.name}.function]"
    raw = checked_table(target.options.get("function", {}), where, FUNCTION_KEYS)
    for key, value in raw.items():
        if isinstance(value, int) and value < 1:
            raise ConfigError(f"{where} {key} must be at least 1, got {value}")
    for name, value in raw.get("environment", {}).items():
        if not isinstance(value, str):
            raise ConfigError(f"{where} environment.{name} must be a string, got {value!r}")
    return dict(raw)
