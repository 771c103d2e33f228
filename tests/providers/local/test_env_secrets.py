"""What is particular to secrets from the environment: variable names, the .env file, precedence, errors."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.errors import NotFound
from overcast.providers.local.env_secrets import EnvSecretStore, variable_names
from overcast.resources.url import ResourceURL


def _unique(stem: str) -> str:
    """A secret name no other test (or the machine's environment) uses."""
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _at(base: Path, url: str) -> ResourceURL:
    """``url`` resolved against a test's folder, as the config resolves it against the app's."""
    return ResourceURL.parse(url, base_dir=base)


def test_variable_names() -> None:
    assert variable_names("mail-api-key") == ["MAIL_API_KEY", "mail-api-key"]
    assert variable_names("db.password/v2") == ["DB_PASSWORD_V2", "db.password/v2"]
    assert variable_names("TOKEN") == ["TOKEN"]


def test_opened_by_the_registry(tmp_path: Path) -> None:
    store = overcast.open_secrets("env://?file=conf/.env", base_dir=tmp_path)
    assert isinstance(store, EnvSecretStore)
    assert store.env_file == tmp_path / "conf" / ".env"
    default = overcast.open_secrets("env://", base_dir=tmp_path)
    assert isinstance(default, EnvSecretStore) and default.env_file == tmp_path / ".env"


def test_upper_case_variable_then_exact_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _unique("mail-api-key")
    upper = name.upper().replace("-", "_")
    store = EnvSecretStore(f"env://?cache_ttl=0&file={tmp_path / '.env'}")
    monkeypatch.setenv(name, "exact")
    assert store.sync.get(name) == "exact"
    monkeypatch.setenv(upper, "upper")
    assert store.sync.get(name) == "upper"


def test_dotenv_file_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _unique("db-password")
    upper = name.upper().replace("-", "_")
    (tmp_path / ".env").write_text(
        f'# comment\nexport {upper}="from file # not a comment"\nOTHER=\'single quoted\'\nMULTI="line one\nline two"\n'
    )
    store = EnvSecretStore(_at(tmp_path, "env://?cache_ttl=0"))
    assert store.sync.get(name) == "from file # not a comment"
    assert store.sync.get("other") == "single quoted"
    assert store.sync.get("multi") == "line one\nline two"
    monkeypatch.setenv(upper, "from env")
    assert store.sync.get(name) == "from env"  # the environment overrides the file


def test_the_file_is_read_again_when_the_cache_expires(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    name = _unique("token")
    variable = name.upper().replace("-", "_")
    env.write_text(f"{variable}=one\n")
    cached = EnvSecretStore(_at(tmp_path, "env://"))
    fresh = EnvSecretStore(_at(tmp_path, "env://?cache_ttl=0"))
    assert cached.sync.get(name) == "one" and fresh.sync.get(name) == "one"
    env.write_text(f"{variable}=two\n")
    assert fresh.sync.get(name) == "two"
    assert cached.sync.get(name) == "one"
    cached.invalidate(name)
    assert asyncio.run(cached.get(name)) == "two"


def test_missing_secret_names_what_was_tried_and_never_a_value(tmp_path: Path) -> None:
    name = _unique("mail-api-key")
    (tmp_path / ".env").write_text("OTHER_SECRET=hunter2-very-secret\nEMPTY_KEY\n")
    store = EnvSecretStore(_at(tmp_path, "env://"), name="secrets")
    with pytest.raises(NotFound) as caught:
        store.sync.get(name)
    message = str(caught.value)
    assert name in message and name.upper().replace("-", "_") in message
    assert str(tmp_path / ".env") in message
    assert "hunter2" not in message
    with pytest.raises(NotFound, match="empty-key"):
        store.sync.get("empty-key")  # a bare name in .env has no value


def test_missing_file_is_named(tmp_path: Path) -> None:
    store = EnvSecretStore(f"env://?file={tmp_path / 'nowhere.env'}")
    with pytest.raises(NotFound, match="does not exist"):
        store.sync.get(_unique("x"))
    with pytest.raises(NotFound, match=r"nowhere\.env"):
        asyncio.run(store.ping())
    assert asyncio.run(EnvSecretStore(_at(tmp_path, "env://")).ping()) is None
