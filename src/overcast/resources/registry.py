"""Which class serves a URL scheme for each kind of resource, loaded only when first used.

Every provider family declares itself (``overcast/providers/<family>/family.py`` holds a
:class:`Family`) and is registered through the ``overcast.providers`` entry-point group,
the same group a third-party family uses, so the core keeps no list of families. An
entry without a dot names a :class:`Family` (``aws = "overcast.providers.aws.family:FAMILY"``);
an entry named ``KIND.SCHEME`` (``kv.etcd``) whose value is ``module:Class`` adds one
provider. Entries are import strings, so naming a provider costs nothing until it is
opened; a missing extra gives one error that says what to install. Entry points are read
(about 10 ms) only when a scheme or a family must be looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MissingDependency
from .records import field, record
from .url import ResourceURL

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "KINDS",
    "Family",
    "NativeMetrics",
    "Provider",
    "families",
    "family_of_cloud",
    "family_of_scheme",
    "install_hint",
    "known_schemes",
    "open_resource",
    "load_attribute",
    "missing_module",
    "register",
    "register_family",
    "resolve",
    "semantic_conventions",
    "upstream_name",
]

KINDS = ("kv", "bucket", "queue", "topic", "cache", "secret")
ENTRY_POINT_GROUP = "overcast.providers"
_PROVIDERS = __name__.rsplit(".", 2)[0] + ".providers"  # the package of Overcast's own families


@record(frozen=True)
class NativeMetrics:
    """The metrics exporter a cloud uses when ``OTEL_METRICS_EXPORTER`` is unset.

    ``exporter`` is a name ``OTEL_METRICS_EXPORTER`` accepts; ``requires_env`` an
    environment variable without which it stays off (Azure Monitor's connection string).
    """

    exporter: str
    requires_env: str | None = None


@record(frozen=True)
class Family:
    """What a provider family states about itself, in its own folder, without importing an SDK.

    ``schemes`` maps kind → URL scheme → ``module:Class``; ``extra`` is the pip extra that
    installs its SDKs; ``cloud`` the cloud it belongs to (``None`` for families reached
    the same way from anywhere: local, Redis, PostgreSQL, Momento); ``upstreams`` the
    name a scheme has in metrics when it differs from the scheme; ``native_metrics`` the
    cloud's default metrics exporter; ``log_fields`` a ``module:function`` adding the
    cloud's own fields to each JSON log line; ``runtimes`` the entry points the
    platform calls (``"lambda": "overcast.providers.aws:lambda_handler"``);
    ``target_options`` the ``[targets.*]`` keys its providers or deploy read;
    ``semantic_conventions`` maps a scheme to the OpenTelemetry semantic-convention
    attributes naming its service on spans (``{"dynamodb": {"db.system": "dynamodb"}}``);
    ``pricing`` a ``module:attribute`` naming the family's prices and unit rules for
    ``overcast cost`` (an ``overcast.cost.model.Pricing``).
    ``deploy`` the ``module:function`` that renders a deployment plan for the cloud
    (``overcast plan``), imported only when a plan is made.
    ``requires`` the top-level modules its extra installs, which every provider of the
    family may need: where one is missing the extra counts as not installed (see
    :func:`missing_module`), even if a provider imports and half works without it.
    ``arns`` the ``module:function`` turning one of the cloud's resource identifiers
    (``arn:aws:...``) into its provider URL, or ``None`` when it is not the cloud's: how
    ``overcast.toml`` names an existing resource by ARN.
    """

    name: str
    schemes: Mapping[str, Mapping[str, str]]
    extra: str | None = None
    cloud: str | None = None
    upstreams: Mapping[str, str] = field(default_factory=dict)
    native_metrics: NativeMetrics | None = None
    log_fields: str | None = None
    runtimes: Mapping[str, str] = field(default_factory=dict)
    target_options: tuple[str, ...] = ()
    semantic_conventions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    pricing: str | None = None
    deploy: str | None = None
    requires: tuple[str, ...] = ()
    arns: str | None = None


@record(frozen=True)
class Provider:
    """A registry entry: the class behind ``scheme`` for ``kind`` and how to install it."""

    kind: str
    scheme: str
    target: str
    extra: str | None = None
    family: str | None = None

    @property
    def install(self) -> str | None:
        return f"pip install 'overcast[{self.extra}]'" if self.extra else None


_registry: dict[tuple[str, str], Provider] = {
    # Not a family: a wrapper over other providers (overcast.resilience), built into the core.
    (kind, "replicated"): Provider(kind, "replicated", f"overcast.resilience.replicated_{module}:Replicated{cls}Store")
    for kind, module, cls in (("kv", "kv", "KeyValue"), ("bucket", "blob", "Blob"))
}
_families: dict[str, Family] = {}
_entry_points_loaded = False


def register(kind: str, scheme: str, target: str, *, extra: str | None = None) -> None:
    """Add or replace the provider for ``kind`` and ``scheme`` (``target`` is ``module:Class``)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown resource kind {kind!r}; kinds are {', '.join(KINDS)}")
    _registry[(kind, scheme)] = Provider(kind, scheme, target, extra)


def register_family(family: Family) -> None:
    """Add a family's schemes (entries already registered by hand are kept)."""
    _families[family.name] = family
    for kind, schemes in family.schemes.items():
        if kind not in KINDS:
            raise ConfigError(f"family {family.name!r}: unknown resource kind {kind!r}; kinds are {', '.join(KINDS)}")
        for scheme, target in schemes.items():
            _registry.setdefault((kind, scheme), Provider(kind, scheme, target, family.extra, family.name))


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points  # costly to import; needed only to resolve a scheme

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kind, dot, scheme = ep.name.partition(".")
        if dot:
            if kind in KINDS and scheme:
                _registry.setdefault((kind, scheme), Provider(kind, scheme, ep.value))
            continue
        try:
            declared = ep.load()
        except ModuleNotFoundError as exc:
            if _left_out(ep.value, exc):
                continue
            raise
        if not isinstance(declared, Family):
            raise ConfigError(
                f"entry point {ep.name!r} = {ep.value!r} in group {ENTRY_POINT_GROUP!r} "
                "names no overcast.resources.registry.Family"
            )
        register_family(declared)
    if not any(provider.target.startswith(f"{_PROVIDERS}.") for provider in _registry.values()):
        _load_bundled_families()


def _left_out(value: str, exc: ModuleNotFoundError) -> bool:
    """Whether an entry names one of Overcast's own families that a deployment package left
    out (it packages only the families its target uses)."""
    missing = exc.name or ""
    return value.startswith(f"{_PROVIDERS}.") and missing.startswith(f"{_PROVIDERS}.") and value.startswith(missing)


def _load_bundled_families() -> None:
    """Overcast's own families when its metadata is absent (its source copied into a bundle
    without the ``.dist-info``): each ``overcast/providers/<family>/family.py`` found on disk."""
    import os  # listed by hand: pkgutil's import would be part of a packaged function's cold start

    providers = importlib.import_module(_PROVIDERS)
    names = {name for folder in providers.__path__ for name in os.listdir(folder) if name.isidentifier()}
    for name in sorted(names):
        try:
            module = importlib.import_module(f"{providers.__name__}.{name}.family")
        except ModuleNotFoundError:
            continue
        if isinstance(getattr(module, "FAMILY", None), Family):
            register_family(module.FAMILY)


def families() -> dict[str, Family]:
    """Every installed family, by name."""
    _load_entry_points()
    return dict(_families)


def family_of_scheme(scheme: str) -> Family | None:
    """The family serving ``scheme`` (for any kind), or ``None`` for a lone third-party entry."""
    _load_entry_points()
    for (_, known), provider in _registry.items():
        if known == scheme and provider.family is not None:
            return _families.get(provider.family)
    return None


def family_of_cloud(cloud: str | None) -> Family | None:
    """The family that is ``cloud`` (``aws``, ``gcp``, ...), if one is installed."""
    if not cloud:
        return None
    _load_entry_points()
    return next((f for f in _families.values() if f.cloud == cloud), None)


def upstream_name(scheme: str) -> str:
    """The upstream a scheme names in metrics (``gs`` → ``gcs``); the scheme itself by default."""
    family = family_of_scheme(scheme)
    return family.upstreams.get(scheme, scheme) if family else scheme


def semantic_conventions(scheme: str) -> Mapping[str, str]:
    """The semantic-convention attributes naming the service behind ``scheme`` (none if unknown)."""
    family = family_of_scheme(scheme)
    return family.semantic_conventions.get(scheme, {}) if family else {}


def load_attribute(target: str) -> Any:
    """Import ``module:attribute`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def install_hint(kind: str, scheme: str) -> str | None:
    """The ``pip install`` line for the extra behind ``kind``/``scheme``, if it has one."""
    _load_entry_points()
    provider = _registry.get((kind, scheme))
    return provider.install if provider else None


def missing_module(kind: str, scheme: str) -> str | None:
    """The first module that ``scheme``'s family requires (``Family.requires``) and cannot be found.

    Found without importing it, so a check costs no SDK import. A DynamoDB store can run
    without botocore (its lite client), but not everywhere nor for every operation: the
    extra is what a user installs, so it is what is checked."""
    import importlib.util

    _load_entry_points()
    provider = _registry.get((kind, scheme))
    family = _families.get(provider.family) if provider and provider.family else None
    for module in family.requires if family else ():
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # a parent package missing, or a broken one
            return module
    return None


def known_schemes(kind: str) -> list[str]:
    _load_entry_points()
    return sorted(scheme for k, scheme in _registry if k == kind)


def resolve(kind: str, scheme: str, *, resource: str) -> type[Any]:
    """Import and return the class for ``kind``/``scheme``, or raise a clear error."""
    provider = _registry.get((kind, scheme))
    if provider is None:
        _load_entry_points()
        provider = _registry.get((kind, scheme))
    if provider is None:
        raise ConfigError(
            f"{kind} {resource!r}: unknown scheme {scheme!r}; "
            f"known schemes for {kind}: {', '.join(known_schemes(kind))}"
        )
    module_name, _, attr = provider.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; run: {provider.install}" if provider.install else ""
        raise MissingDependency(
            f"{kind} {resource!r} uses scheme {scheme!r}, whose provider could not be imported ({exc}){hint}"
        ) from exc
    cls: type[Any] = getattr(module, attr)
    return cls


def open_resource(kind: str, url: str | ResourceURL, *, name: str | None = None, base_dir: Path | None = None) -> Any:
    """Open the provider behind ``url`` for a resource of ``kind``."""
    parsed = url if isinstance(url, ResourceURL) else ResourceURL.parse(url, base_dir=base_dir)
    cls = resolve(kind, parsed.scheme, resource=name or str(parsed))
    return cls(parsed, name=name)
