"""A workload profile from a TOML (or YAML) file and from flags, checked against the app's resources.

```toml
[workload]
requests = 3_000_000      # a month
duration_ms = 120         # each request's run time
memory_mb = 512
response_bytes = 2048     # answered to the internet per request

[resources.users]         # operations per request, sizes, stored volume, replicas
get = 2
put = 0.1
put_conditional = 0.05
item_bytes = 1500
stored_gb = 2
replicas = ["gcp"]
```

A resource the profile does not name gets its kind's defaults (:data:`DEFAULT_OPS`).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from .model import ResourceUsage, Workload

__all__ = ["DEFAULT_OPS", "OPERATIONS", "load_profile", "read_profile", "workload_from"]

#: The operations each kind's rules price (what a profile may name).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "kv": ("get", "put", "put_conditional", "put_absent", "delete", "scan"),
    "bucket": ("get", "put", "head", "delete", "list"),
    "queue": ("send", "receive", "ack"),
    "topic": ("publish",),
    "cache": ("get", "set", "delete", "incr"),
    "secret": ("get",),
}

#: Operations per request for a resource the profile leaves out.
DEFAULT_OPS: dict[str, dict[str, float]] = {
    "kv": {"get": 1.0, "put": 0.2},
    "bucket": {"get": 0.1, "put": 0.01},
    "queue": {"send": 0.1, "receive": 0.1, "ack": 0.1},
    "topic": {"publish": 0.1},
    "cache": {"get": 1.0, "set": 0.1},
    "secret": {"get": 1.0},
}

_WORKLOAD_KEYS = {"requests": float, "duration_ms": float, "memory_mb": float, "response_bytes": int, "instances": int}
_RESOURCE_KEYS = {"item_bytes", "stored_gb", "subscriptions", "replicas"}


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise InvalidArgument(f"{where}: expected a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise InvalidArgument(f"{where}: must be {'above' if positive else 'at least'} 0, got {value!r}")
    return float(value)


def _resource(name: str, kind: str, table: Mapping[str, Any], subscriptions: int) -> ResourceUsage:
    where = f"profile [resources.{name}] ({kind})"
    known = OPERATIONS[kind]
    ops: dict[str, float] = {}
    for key, value in table.items():
        if key in _RESOURCE_KEYS:
            continue
        if key not in known:
            raise InvalidArgument(
                f"{where}: unknown key {key!r}; operations of a {kind}: {', '.join(known)}; "
                f"other keys: {', '.join(sorted(_RESOURCE_KEYS))}"
            )
        ops[key] = _number(value, f"{where} {key}")
    replicas = table.get("replicas", [])
    if not isinstance(replicas, list) or not all(isinstance(r, str) for r in replicas):
        raise InvalidArgument(f"{where} replicas: expected a list of cloud names, got {replicas!r}")
    return ResourceUsage(
        name,
        kind,
        ops or dict(DEFAULT_OPS[kind]),
        item_bytes=int(_number(table.get("item_bytes", 1024), f"{where} item_bytes")),
        stored_gb=_number(table.get("stored_gb", 0.0), f"{where} stored_gb"),
        subscriptions=int(_number(table.get("subscriptions", subscriptions), f"{where} subscriptions")),
        replicas=tuple(replicas),
    )


def workload_from(
    data: Mapping[str, Any],
    declared: Mapping[str, str],
    *,
    subscriptions: Mapping[str, int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Workload:
    """A :class:`Workload` from a profile's tables, for an app whose resources are ``declared``
    (name → kind); ``overrides`` (from flags) win over the file's ``[workload]``."""
    unknown = set(data) - {"workload", "resources", "regions"}
    if unknown:
        raise InvalidArgument(
            f"profile: unknown table(s) {', '.join(sorted(unknown))}; tables: workload, resources, regions"
        )
    table = dict(data.get("workload", {}))
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for key in table:
        if key not in _WORKLOAD_KEYS:
            raise InvalidArgument(f"profile [workload]: unknown key {key!r}; keys: {', '.join(_WORKLOAD_KEYS)}")
    if "requests" not in table:
        raise InvalidArgument(
            "profile [workload]: requests (a month) is missing; give it in the file or with --requests"
        )
    values = {
        key: cast(_number(table[key], f"profile [workload] {key}", positive=key != "response_bytes"))
        for key, cast in _WORKLOAD_KEYS.items()
        if key in table
    }
    resources_table: Mapping[str, Any] = data.get("resources", {})
    for name in resources_table:
        if name not in declared:
            raise InvalidArgument(
                f"profile [resources.{name}]: the app declares no resource {name!r}; "
                f"its resources: {', '.join(sorted(declared)) or 'none'}"
            )
    subs = subscriptions or {}
    resources = {
        name: _resource(name, kind, resources_table.get(name, {}), max(1, subs.get(name, 1)))
        for name, kind in declared.items()
    }
    regions = data.get("regions", {})
    if not isinstance(regions, dict) or not all(isinstance(v, str) for v in regions.values()):
        raise InvalidArgument(f'profile [regions]: expected cloud = "region" pairs, got {regions!r}')
    return Workload(resources=resources, regions=dict(regions), **values)


def read_profile(path: str | Path | None) -> dict[str, Any]:
    """The tables of the profile at ``path``: TOML, or YAML for a ``.yaml``/``.yml`` file (none when ``None``)."""
    if path is None:
        return {}
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgument(f"profile {file}: no such file") from None
    if file.suffix.lower() in (".yaml", ".yml"):
        return _yaml(file, text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"profile {file}: not valid TOML: {exc}") from None


def _yaml(file: Path, text: str) -> dict[str, Any]:
    """A YAML profile: the same tables as the TOML one, as mappings."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:
        from ..errors import MissingDependency

        raise MissingDependency(f"a YAML profile needs PyYAML; run: pip install 'overcast[cost]' ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"profile {file}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument(f"profile {file}: expected a mapping of tables (workload, resources, regions)")
    return data


def load_profile(
    path: str | Path | None,
    declared: Mapping[str, str],
    *,
    subscriptions: Mapping[str, int] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Workload:
    """The workload of the TOML file at ``path`` (flags alone when ``None``)."""
    return workload_from(read_profile(path), declared, subscriptions=subscriptions, overrides=overrides)
