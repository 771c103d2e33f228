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
    write(project, '[targets.local]\nkv.users = "sqlite:///data/users.db"\nbucket.files = "file:///blobs"\n')
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


def test_replicated_resources_are_refused_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, '[targets.multi]\nkv.users = { primary = "memory://a", replicas = ["memory://b"] }\n')
    with pytest.raises(ConfigError, match=r"kv\.users.*replicated"):
        load_config(path)


def test_defaults_of_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown kind"):
        load_config(write(tmp_path, '[targets.aws]\ndefaults.table = "dynamodb://{name}"\n'))


def test_an_unknown_target_key_names_file_line_and_the_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[app]\nentry = "app:app"\n\n[targets.aws]\ncloud = "aws"\nregoin = "us-east-1"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}:6:" in message and "'regoin'" in message and "did you mean 'region'?" in message
    path = write(tmp_path, '[targets.gcp]\n\n[targets.aws]\n"kvs".users = "dynamodb://t"\n')
    with pytest.raises(ConfigError, match=r"overcast\.toml:4: \[targets\.aws\] has no key 'kvs'; did you mean 'kv'"):
        load_config(path)


def test_a_target_names_its_cloud_or_infers_it_when_resources_agree(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[targets.prod]\n"
        'kv.users = "dynamodb://users"\ncache.sessions = "redis://cache:6379/0"\n'
        '[targets.web]\ndefaults.bucket = "gs://{app}-{name}"\n'
        '[targets.plain]\nkv.users = "postgresql://db/app"\n'
        '[targets.mixed]\ncloud = "azure"\nkv.users = "dynamodb://users"\nbucket.files = "gs://files"\n',
    )
    config = load_config(path)
    assert config.target("prod").cloud == "aws"
    assert config.target("web").cloud == "gcp"
    assert config.target("plain").cloud is None
    assert config.target("mixed").cloud == "azure"
    assert config.target("local").cloud == "local"


def test_resources_on_two_clouds_without_cloud_is_an_error_naming_them(tmp_path: Path) -> None:
    path = write(tmp_path, '[targets.multi]\nkv.users = "dynamodb://users"\nbucket.avatars = "gs://avatars"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "[targets.multi] mixes clouds" in message
    assert "aws: kv.users (dynamodb)" in message and "gcp: bucket.avatars (gs)" in message
    assert 'cloud = "aws"' in message
    write(tmp_path, '[targets.multi]\ncloud = "mars"\n')
    with pytest.raises(ConfigError, match="cloud = 'mars': the clouds are aws, gcp, azure, local"):
        load_config(path)


def test_a_url_from_the_environment_may_carry_credentials_and_never_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[targets.prod]\nkv.users = "${DATABASE_URL}"\n')
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        config.url_for("kv", "users", app="demo", target="prod")
    assert "${DATABASE_URL}" in str(caught.value) and "kv 'users'" in str(caught.value)
    assert str(path) in str(caught.value) and "not set" in str(caught.value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:s3cr%40t-value@db.internal:5432/users")
    url = config.url_for("kv", "users", app="demo", target="prod")
    assert (url.scheme, url.path, url.username, url.password) == ("postgresql", "users", "app", "s3cr@t-value")
    assert "s3cr" not in str(url) and "s3cr" not in repr(url) and "app:" not in str(url)
    # a literal URL in overcast.toml still refuses credentials, and the message does not repeat them
    write(tmp_path, '[targets.prod]\nkv.users = "postgresql://app:hunter22@db/users"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "credentials" in str(caught.value) and "hunter22" not in str(caught.value)
    assert "${DATABASE_URL}" in str(caught.value)
    write(tmp_path, '[targets.prod]\nkv.users = "postgresql://${HOST}/users"\n')
    with pytest.raises(ConfigError, match="whole value"):
        load_config(path)
