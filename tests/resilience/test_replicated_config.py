"""The replicated form in overcast.toml: one URL everywhere, errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

import overcast
from overcast.config import load_config
from overcast.errors import ConfigError, Conflict, Unavailable
from overcast.resilience.replicated_kv import ReplicatedKeyValueStore
from overcast.resilience.spec import ReplicaSpec
from overcast.resources.url import ResourceURL

TOML = """\
[targets.multi]
kv.users = { primary = "sqlite:///a.db", replicas = ["sqlite:///b.db", "memory://c"], ack = "all" }
"""


def test_the_table_form_is_one_url_that_reopens_the_same_store(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text(TOML)
    config = load_config(tmp_path)
    url = config.url_for("kv", "users", app="demo", target="multi")
    assert url.scheme == "replicated"
    spec = ReplicaSpec.from_url(url)
    assert [str(m) for m in spec.members] == ["sqlite:///a.db", "sqlite:///b.db", "memory://c"]
    assert spec.ack == "all" and spec.mode == "active-passive"
    assert spec.primary.local_path() == tmp_path / "a.db"  # relative to overcast.toml, as for any URL
    again = ResourceURL.parse(str(url), base_dir=tmp_path)
    assert ReplicaSpec.from_url(again) == ReplicaSpec.from_url(url)


def test_an_app_handle_on_the_table_form_replicates(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text(TOML)
    app = overcast.App("demo")
    app.use_config(tmp_path / "overcast.toml")
    users = app.kv("users")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OVERCAST_TARGET", "multi")
        version = users.sync.put("ada", {"name": "Ada"})
        assert users.sync.get("ada").version == version  # type: ignore[union-attr]
        held = [overcast.open_kv(u, base_dir=tmp_path).sync.get("ada") for u in ("sqlite:///a.db", "sqlite:///b.db")]
        assert all(item is not None and item.value["_oc"] == version for item in held)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'kv.users = { primary = "memory://a", replica = ["memory://b"] }',
            r"unknown key 'replica'.*did you mean 'replicas'",
        ),
        (
            'kv.users = { primary = "memory://a", replicas = ["memory://b"], ack = "most" }',
            "ack = 'most' is not one of",
        ),
        ('kv.users = { replicas = ["memory://b"] }', "primary must be a provider URL"),
        ('kv.users = { primary = "memory://a", replicas = [] }', "replicas must be a non-empty list"),
        ('kv.users = { primary = "memory://a", replicas = ["memory://a"] }', "a member is named twice"),
        ('kv.users = { primary = "nope", replicas = ["memory://b"] }', "not of the form scheme://"),
        ('cache.c = { primary = "memory://a", replicas = ["memory://b"] }', "replication is available for kv"),
    ],
)
def test_a_mistake_names_the_file_the_line_and_the_key(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "overcast.toml").write_text(f"[targets.multi]\nregion = 'x'\n{line}\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path)
    where = f"{tmp_path / 'overcast.toml'}:3: [targets.multi]"
    assert str(info.value).startswith(where), str(info.value)


def test_conditional_writes_are_refused_while_failed_over(tmp_path: Path) -> None:
    """The primary down (a port nothing listens on): plain writes go to the replica; a
    conditional one is refused with a clear error instead of risking a lost update."""
    from resilience.pairs import replicated_url
    from servers import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0?prefix=x"
    store = overcast.open_kv(replicated_url(dead, [f"sqlite:///{tmp_path}/r.db"], timeout="1s"))
    assert isinstance(store, ReplicatedKeyValueStore)
    version = store.sync.put("k", {"n": 1})
    assert store.sync.get("k").version == version  # type: ignore[union-attr]
    with pytest.raises(Unavailable, match=r"conditional writes .* refused while failed over"):
        store.sync.put("k", {"n": 2}, if_version=version)
    with pytest.raises(Unavailable, match="conditional writes"):
        store.sync.put("new", {"n": 2}, if_absent=True)
    store.close()


def test_if_version_is_the_clock_on_every_member(tmp_path: Path) -> None:
    from resilience.pairs import replicated_url

    members = [f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"]
    store = overcast.open_kv(replicated_url(members[0], members[1:]))
    first = store.sync.put("k", {"n": 1})
    second = store.sync.put("k", {"n": 2}, if_version=first)
    assert second > first  # clocks order
    with pytest.raises(Conflict):
        store.sync.put("k", {"n": 3}, if_version=first)
    store.close()
