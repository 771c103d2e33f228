"""Key Vault secrets against the FAKE Key Vault (tests/providers/azure/fake_keyvault.py): the real
SDK's challenge authentication with DefaultAzureCredential, name mapping, binding, caching."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import overcast
from overcast.errors import InvalidArgument, NotFound, PermissionDenied
from overcast.providers.azure.keyvault import KeyVaultSecretStore, vault_secret_name
from providers.azure.fake_keyvault import FakeKeyVault, start_fake_keyvault


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKeyVault]:
    fake = start_fake_keyvault()
    yield fake
    fake.stop()


def test_fake_the_sdk_answers_the_challenge_with_a_token(fake: FakeKeyVault) -> None:
    fake.set("greeting", "hello")
    before = len(fake.requests)
    store = overcast.open_secrets(fake.url(cache_ttl=0))
    assert store.sync.get("greeting") == "hello"
    assert all(path.startswith("/secrets/") for _, path, _ in fake.requests[before:])
    assert fake.requests[-1] == ("GET", "/secrets/greeting/", True)
    assert any(not authorized for _, _, authorized in fake.requests)  # the first call was challenged


def test_fake_underscores_become_double_hyphens(fake: FakeKeyVault) -> None:
    fake.set("db--password", "p@ss")
    assert overcast.open_secrets(fake.url(cache_ttl=0)).sync.get("db_password") == "p@ss"
    assert vault_secret_name("a_b-C9", resource="r") == "a--b-C9"


def test_fake_names_key_vault_cannot_hold_are_refused_before_any_call(fake: FakeKeyVault) -> None:
    store = overcast.open_secrets(fake.url(cache_ttl=0))
    before = len(fake.requests)
    for name in ("dotted.name", "slash/name", "ü", "x" * 128):
        with pytest.raises(InvalidArgument, match="Key Vault"):
            store.sync.get(name)
    assert len(fake.requests) == before


def test_fake_a_path_binds_the_resource_to_one_secret(fake: FakeKeyVault) -> None:
    fake.set("mail-key", "m41l")
    store = overcast.open_secrets(fake.url(cache_ttl=0, secret="mail-key"))
    assert isinstance(store, KeyVaultSecretStore) and store.bound == "mail-key"
    assert store.sync.get("mail_api_key") == "m41l"  # whatever the app calls it


def test_fake_values_are_cached(fake: FakeKeyVault) -> None:
    fake.set("cached", "one")
    store = overcast.open_secrets(fake.url(cache_ttl=600))
    assert store.sync.get("cached") == "one"
    before = len(fake.requests)
    fake.set("cached", "two")
    assert store.sync.get("cached") == "one" and len(fake.requests) == before
    store.invalidate("cached")
    assert store.sync.get("cached") == "two"


def test_fake_missing_secrets_and_put(fake: FakeKeyVault) -> None:
    store = overcast.open_secrets(fake.url(cache_ttl=0))
    assert isinstance(store, KeyVaultSecretStore)
    with pytest.raises(NotFound, match="'nothing-here'"):
        store.sync.get("nothing-here")
    store.put("written_by_put", "v1")
    assert fake.secrets["written--by--put"][-1][1] == "v1"
    assert store.sync.get("written_by_put") == "v1"


def test_fake_a_refused_token_is_permission_denied(fake: FakeKeyVault) -> None:
    store = overcast.open_secrets(fake.url(cache_ttl=0))
    fake.set("locked", "x")
    token = fake.token
    fake.token = "another-token"
    try:
        with pytest.raises(PermissionDenied):
            store.sync.get("locked")
    finally:
        fake.token = token


def test_the_vault_url_and_challenge_check() -> None:
    store = KeyVaultSecretStore("keyvault://my-vault")
    assert store.vault_url == "https://my-vault.vault.azure.net" and store.verify_challenge
    with pytest.raises(InvalidArgument):
        KeyVaultSecretStore("keyvault://")
    with pytest.raises(overcast.errors.ConfigError):
        KeyVaultSecretStore("keyvault://v?token=abc")
