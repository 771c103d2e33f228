"""overcast.toml, targets and the resolution of every resource's provider URL."""

from __future__ import annotations

from pathlib import Path

import pytest

import overcast
from overcast.config import LOCAL_DEFAULTS, load_config
from overcast.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OVERCAST_TARGET", "OVERCAST_CONFIG", "OVERCAST_KV_USERS", "OVERCAST_CACHE_USERS_CACHE"):
        monkeypatch.delenv(var, raising=False)


def write(folder: Path, text: str) -> Path:
    path = folder / "overcast.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[app]\nentry = "app:app"\n\n[targets.aws]\nkv.users = dynamodb://x\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 5" in message


def test_malformed_toml_through_the_app(tmp_path: Path) -> None:
    path = write(tmp_path, "[targets.local\n")
    app = overcast.App("broken", config=path)
    with pytest.raises(ConfigError, match=r"overcast\.toml: line 1"):
        app.url_for("kv", "users")


def test_unknown_target_names_the_known_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, '[targets.aws]\nkv.users = "dynamodb://t"\n[targets.gcp]\n'))
    with pytest.raises(ConfigError) as caught:
        config.url_for("kv", "users", app="demo", target="azrue")
    message = str(caught.value)
    assert "'azrue'" in message
    assert "aws, gcp, local" in message
    monkeypatch.setenv("OVERCAST_TARGET", "nope")
    with pytest.raises(ConfigError, match="known targets: aws, gcp, local"):
        config.url_for("kv", "users", app="demo")


def test_a_bad_provider_url_names_where_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, '[targets.aws]\nkv.users = "not a url"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert "kv.users" in str(caught.value)


def test_unknown_top_level_table_and_bad_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown top-level table"):
        load_config(write(tmp_path, "[target.aws]\n"))
    with pytest.raises(ConfigError, match="module:attribute"):
        load_config(write(tmp_path, '[app]\nentry = "app"\n'))


RESOLUTION = """
[targets.local]
[targets.aws]
region = "us-east-1"
defaults.kv = "dynamodb://{app}-{name}"
kv.users = "dynamodb://users-table"
[targets.bare]
"""


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, RESOLUTION))

    def url(name: str, target: str) -> str:
        return str(config.url_for("kv", name, app="demo", target=target))

    # 4. local defaults; 3. the target's defaults template; 2. the target's table.
    assert config.url_for("kv", "orders", app="demo").local_path() == tmp_path / ".overcast/kv/orders.db"
    assert url("orders", "aws").startswith("dynamodb://demo-orders")
    assert url("users", "aws").startswith("dynamodb://users-table")
    # 1. the environment variable beats them all, on every target.
    monkeypatch.setenv("OVERCAST_KV_USERS", "memory://from-env")
    assert url("users", "aws").startswith("memory://from-env")
    assert url("users", "local").startswith("memory://from-env")
    assert url("orders", "aws").startswith("dynamodb://demo-orders")


def test_target_chosen_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, RESOLUTION)
    app = overcast.App("demo", config=path)
    assert app.target == "local"
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    assert app.target == "aws"
    assert app.url_for("kv", "users").scheme == "dynamodb"
    assert app.config.target().options["region"] == "us-east-1"


def test_a_cloud_target_without_a_provider_says_what_to_set(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, RESOLUTION))
    with pytest.raises(ConfigError) as caught:
        config.url_for("bucket", "avatars", app="demo", target="bare")
    message = str(caught.value)
    assert "bucket 'avatars'" in message
    assert "[targets.bare]" in message


def test_env_override_of_a_name_with_a_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, "[targets.local]\n"))
    monkeypatch.setenv("OVERCAST_CACHE_USERS_CACHE", "memory://elsewhere")
    assert config.url_for("cache", "users-cache", app="demo").host == "elsewhere"


def test_relative_paths_resolve_against_the_toml_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write(project, '[targets.local]\nkv.users = "sqlite:///data/users.db"\nbucket.files = "file://blobs"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(project / "overcast.toml")
    assert config.url_for("kv", "users", app="d").local_path() == project / "data" / "users.db"
    assert config.url_for("bucket", "files", app="d").local_path() == project / "blobs"
    absolute = tmp_path / "abs.db"
    write(project, f'[targets.local]\nkv.users = "sqlite:///{absolute}"\n')
    assert load_config(project / "overcast.toml").url_for("kv", "users", app="d").local_path() == absolute


def test_data_written_lands_beside_the_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write(project, '[targets.local]\nkv.users = "sqlite:///data/users.db"\n')
    monkeypatch.chdir(tmp_path)
    app = overcast.App("demo", config=project)
    users = app.kv("users")
    users.sync.put("u1", {"name": "Ada"})
    assert (project / "data" / "users.db").exists()
    assert users.sync.get("u1") is not None
    app.reset()


def test_config_found_upward_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[targets.local]\nkv.users = "memory://up"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert load_config().path == tmp_path / "overcast.toml"
    monkeypatch.setenv("OVERCAST_CONFIG", str(tmp_path / "overcast.toml"))
    assert load_config().url_for("kv", "users", app="d").host == "up"


def test_no_config_uses_the_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(start=tmp_path)
    assert config.path is None
    for kind, template in LOCAL_DEFAULTS.items():
        scheme = template.split(":", 1)[0]
        assert config.url_for(kind, "thing", app="d").scheme == scheme


def test_replicated_resources_are_one_url_and_other_kinds_are_refused_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, '[targets.multi]\nkv.users = { primary = "memory://a", replicas = ["memory://b"] }\n')
    assert load_config(path).url_for("kv", "users", app="a", target="multi").scheme == "replicated"
    path = write(tmp_path, '[targets.multi]\nqueue.jobs = { primary = "memory://a", replicas = ["memory://b"] }\n')
    with pytest.raises(ConfigError, match=r"queue\.jobs: replication is available for kv and bucket resources"):
        load_config(path)


def test_defaults_of_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        load_config(write(tmp_path, '[targets.aws]\ndefaults.table = "dynamodb://{name}"\n'))


def test_a_target_names_its_cloud(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[targets.prod]\ncloud = "gcp"\nkv.users = "dynamodb://users"\n'))
    assert config.target("prod").cloud == "gcp"


def test_the_cloud_is_inferred_when_every_resource_agrees(tmp_path: Path) -> None:
    text = (
        '[targets.prod]\nkv.users = "dynamodb://users"\nbucket.files = "s3://files"\n'
        'cache.sessions = "redis://localhost:6379/0"\nkv.local = "sqlite:///x.db"\n'
        '[targets.anywhere]\nkv.users = "postgresql://db/app"\ncache.c = "momento://c"\n'
        "[targets.gcp]\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.target("prod").cloud == "aws"  # Redis and SQLite belong to no cloud: they do not disagree
    assert config.target("anywhere").cloud is None
    assert config.target("gcp").cloud == "gcp"  # nothing cloud-bound: the cloud it is named after


def test_resources_of_two_clouds_without_cloud_are_an_error(tmp_path: Path) -> None:
    text = '[targets.prod]\nkv.users = "dynamodb://users"\nbucket.files = "gs://files"\n'
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as caught:
        _ = config.target("prod").cloud
    message = str(caught.value)
    assert "[targets.prod]" in message and "overcast.toml" in message
    assert "aws: kv.users" in message and "gcp: bucket.files" in message and 'cloud = "..."' in message
    fixed = load_config(write(tmp_path, text + 'cloud = "aws"\n'))
    assert fixed.target("prod").cloud == "aws"


def test_unknown_target_key_names_file_line_and_the_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[app]\nentry = "app:app"\n\n[targets.aws]\nregion = "eu-west-1"\nregoin = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}:6:" in message and "[targets.aws]" in message
    assert "'regoin'" in message and "did you mean 'region'" in message
    dotted = write(tmp_path, 'targets.aws.kv.users = "dynamodb://u"\ntargets.aws.clod = "aws"\n')
    with pytest.raises(ConfigError, match=rf"{dotted}:2: .*'clod'.*did you mean 'cloud'"):
        load_config(dotted)


def test_family_options_are_known_target_keys(tmp_path: Path) -> None:
    text = '[targets.gcp]\nproject = "demo"\n[targets.azure]\nresource_group = "rg"\n'
    config = load_config(write(tmp_path, text))
    assert config.target("gcp").options == {"project": "demo"}
    assert config.target("azure").options == {"resource_group": "rg"}


def test_a_url_from_an_unset_variable_names_variable_resource_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OVERCAST_TEST_DB_URL", raising=False)
    path = write(tmp_path, '[targets.prod]\nkv.users = "${OVERCAST_TEST_DB_URL}"\n')
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        config.url_for("kv", "users", app="shop", target="prod")
    message = str(caught.value)
    assert "OVERCAST_TEST_DB_URL" in message and "kv 'users'" in message and str(path) in message


def test_credentials_from_the_environment_are_kept_out_of_sight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.config import redact_url

    monkeypatch.setenv("OVERCAST_TEST_DB_URL", "postgresql://shop:s3cr%2Fet@db.internal:5432/shop?table=users")
    monkeypatch.setenv("OVERCAST_TEST_REDIS_HOST", "cache.internal")
    text = (
        '[targets.prod]\nkv.users = "${OVERCAST_TEST_DB_URL}"\n'
        'cache.sessions = "redis://${OVERCAST_TEST_REDIS_HOST}:6379/0"\n'
    )
    config = load_config(write(tmp_path, text))
    url = config.url_for("kv", "users", app="shop", target="prod")
    assert url.scheme == "postgresql" and url.host == "db.internal:5432" and url.path == "shop"
    assert url.options == {"table": "users"}
    assert "s3cr" not in str(url) and "s3cr" not in repr(url) and "shop:" not in str(url)
    assert (url.username, url.password) == ("shop", "s3cr/et")
    cache = config.url_for("cache", "sessions", app="shop", target="prod")
    assert cache.host == "cache.internal:6379" and not cache.has_credentials
    assert redact_url("redis://u:p@h:1/0") == "redis://***@h:1/0"


def test_a_literal_url_still_refuses_credentials(tmp_path: Path) -> None:
    path = write(tmp_path, '[targets.prod]\nkv.users = "postgresql://shop:secret@db/shop"\n')
    with pytest.raises(ConfigError, match="carries credentials") as caught:
        load_config(path)
    assert "[targets.prod] kv.users" in str(caught.value)


def test_credentials_from_the_environment_reach_the_postgres_and_redis_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.providers.postgres._db import conninfo
    from overcast.providers.redis._client import _identity, _options

    monkeypatch.setenv("DATABASE_URL", "postgresql://shop:s3cr%2Fet@db.internal:5432/shop")
    monkeypatch.setenv("OVERCAST_CACHE_SESSIONS", "redis://app:hunter22@cache.internal:6379/0")
    config = load_config(write(tmp_path, '[targets.prod]\nkv.users = "${DATABASE_URL}"\n'))
    info = conninfo(config.url_for("kv", "users", app="shop", target="prod"))
    assert "user=shop" in info and "password=s3cr/et" in info and "host=db.internal" in info
    cache = config.url_for("cache", "sessions", app="shop", target="prod")
    assert "hunter22" not in str(cache)
    options = _options(cache, cluster=False)
    assert (options["username"], options["password"]) == ("app", "hunter22")
    # two URLs that differ only in their credentials never share a client
    other = load_config(write(tmp_path, '[targets.prod]\n')).url_for("cache", "sessions", app="x", target="prod")
    monkeypatch.setenv("OVERCAST_CACHE_SESSIONS", "redis://app:other@cache.internal:6379/0")
    changed = load_config(write(tmp_path, '[targets.prod]\n')).url_for("cache", "sessions", app="x", target="prod")
    assert _identity(other)[0] != _identity(changed)[0]


def test_file_urls_are_read_as_rfc_8089_and_sqlite_urls_as_sqlalchemy(tmp_path: Path) -> None:
    """``file:///srv/x`` is absolute everywhere else (RFC 8089, fsspec, obstore), so here too;
    ``file://rel/x`` is relative, as fsspec reads it; ``sqlite:`` keeps SQLAlchemy's slashes."""
    from overcast.resources.url import ResourceURL

    def path(url: str) -> Path:
        return ResourceURL.parse(url, base_dir=tmp_path).local_path()

    assert path("file:///srv/avatars") == Path("/srv/avatars")
    assert path("file:////srv/avatars") == Path("/srv/avatars")  # the old absolute form still is
    assert path("file://localhost/srv/avatars") == Path("/srv/avatars")
    assert path("file://data/avatars") == tmp_path / "data" / "avatars"
    assert path("file://avatars") == tmp_path / "avatars"
    assert path("sqlite:///data/app.db") == tmp_path / "data" / "app.db"
    assert path("sqlite:////srv/app.db") == Path("/srv/app.db")
    bucket = overcast.open_bucket(f"file://{tmp_path}/abs", base_dir=tmp_path / "elsewhere")
    bucket.sync.put("k", b"v")
    assert (tmp_path / "abs").is_dir() and not (tmp_path / "elsewhere").exists()
