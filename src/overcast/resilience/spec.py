"""What a replicated resource is made of: its members, acknowledgement and read mode.

One representation everywhere: ``overcast.toml``'s table form
``{ primary = "...", replicas = ["..."], ack = "primary" }`` becomes the URL
``replicated://NAME?primary=URL&replicas=URL%20URL&ack=primary``, which every place that
handles one provider URL per resource (handles, provision, doctor, the runtimes) takes
as it is, and which reopens the same store in another process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError
from ..resources.records import record
from ..resources.url import ResourceURL

#: the internal schedule that ships replicated resources' change logs where no process stays up
REPLICATE_SCHEDULE = "overcast-replicate"
REPLICATE_EVERY = "rate(1 minute)"

__all__ = ["ACKS", "KEYS", "MODES", "REPLICATE_EVERY", "REPLICATE_SCHEDULE", "SCHEME", "ReplicaSpec", "replicated_url"]

SCHEME = "replicated"
ACKS = ("primary", "all")
MODES = ("active-passive", "read-nearest")
#: the keys of the table form, and what each holds
KEYS = {
    "primary": "the provider URL writes go to while it answers",
    "replicas": "a list of provider URLs, in failover order",
    "ack": "'primary' (the primary and its change log hold the write) or 'all' (two providers hold it)",
    "mode": "'active-passive' (read the primary) or 'read-nearest' (read the fastest member)",
    "timeout": "the deadline of one member call, e.g. '2s'",
    "horizon": "how long a delete's tombstone is kept, e.g. '7d'",
}


@record(frozen=True)
class ReplicaSpec:
    """The members and settings of a replicated resource, read from its URL."""

    primary: ResourceURL
    replicas: tuple[ResourceURL, ...]
    ack: str = "primary"
    mode: str = "active-passive"
    timeout: float = 0.75
    horizon: float = 7 * 86400.0

    @property
    def members(self) -> tuple[ResourceURL, ...]:
        return (self.primary, *self.replicas)

    @property
    def roles(self) -> tuple[str, ...]:
        """Each member's name in errors, doctor and health: ``primary``, ``replica 1``, ..."""
        return ("primary", *(f"replica {i}" for i in range(1, len(self.members))))

    @classmethod
    def from_url(cls, url: ResourceURL) -> ReplicaSpec:
        unknown = set(url.options) - set(KEYS)
        if unknown:
            raise ConfigError(
                f"replicated URL {url}: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(KEYS)}"
            )
        raw_primary = url.options.get("primary")
        raw_replicas = (url.options.get("replicas") or "").split()
        if not raw_primary or not raw_replicas:
            raise ConfigError(f"replicated URL {url}: needs primary= and at least one replica in replicas=")
        members = [ResourceURL.parse(raw, base_dir=url.base_dir) for raw in (raw_primary, *raw_replicas)]
        if any(member.scheme == SCHEME for member in members):
            raise ConfigError(f"replicated URL {url}: a member may not itself be replicated")
        shown = [str(member) for member in members]
        if len(set(shown)) != len(shown):
            raise ConfigError(f"replicated URL {url}: a member is named twice ({', '.join(shown)})")
        return cls(
            members[0],
            tuple(members[1:]),
            url.option_choice("ack", ACKS, "primary"),
            url.option_choice("mode", MODES, "active-passive"),
            url.option_seconds("timeout", 0.75, positive=True),
            url.option_seconds("horizon", 7 * 86400.0, positive=True),
        )


def replicated_url(name: str, table: Mapping[str, Any], where: str) -> str:
    """The URL form of the table form, or a ConfigError naming ``where`` and the key at fault."""
    for key in table:
        if key not in KEYS:
            import difflib  # only on the error path

            close = difflib.get_close_matches(key, list(KEYS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{where}: unknown key {key!r} in a replicated resource; {hint}")
    primary, replicas = table.get("primary"), table.get("replicas")
    if not isinstance(primary, str) or not primary:
        raise ConfigError(f"{where}: primary must be a provider URL string ({KEYS['primary']})")
    if isinstance(replicas, str):
        replicas = [replicas]
    if not isinstance(replicas, list) or not replicas or not all(isinstance(r, str) and r for r in replicas):
        raise ConfigError(f"{where}: replicas must be a non-empty list of provider URL strings")
    options = {"primary": primary, "replicas": " ".join(replicas)}
    for key in ("ack", "mode", "timeout", "horizon"):
        if key in table:
            value = table[key]
            allowed = {"ack": ACKS, "mode": MODES}.get(key)
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{where}: {key} = {value!r} is not one of {', '.join(map(repr, allowed))}")
            options[key] = str(value)
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in options.items())
    url = f"{SCHEME}://{quote(name, safe='')}?{query}"
    try:
        ReplicaSpec.from_url(ResourceURL.parse(url))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return url
