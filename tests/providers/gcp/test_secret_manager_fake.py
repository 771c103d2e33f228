"""What is particular to the Secret Manager store, against the FAKE Secret Manager gRPC server
(fake_secret_manager.py): the real client's requests, the cache, versions, prefixes and
errors. Secret semantics are the conformance suite's job."""

from __future__ import annotations

import uuid

import pytest
from fake_secret_manager import FakeSecretManager, running_fake

import overcast
from overcast.errors import ConfigError, Conflict, InvalidArgument, NotFound
from overcast.providers.gcp.secrets import SecretManagerSecretStore


@pytest.fixture
def fake() -> FakeSecretManager:
    return running_fake()


def _store(fake: FakeSecretManager, prefix: str | None = None, **options: str) -> SecretManagerSecretStore:
    query = "&".join(f"{k}={v}" for k, v in {"project": "p1", "emulator": fake.address, **options}.items())
    store = overcast.open_secrets(f"gsm://{prefix or 'app-' + uuid.uuid4().hex[:8]}?{query}")
    assert isinstance(store, SecretManagerSecretStore)
    return store


def test_fake_reads_latest_version_and_caches(fake: FakeSecretManager) -> None:
    store = _store(fake)
    store.put("db", "one")
    assert f"projects/p1/secrets/{store.prefix}-db" in fake.secrets
    before = fake.calls.get("AccessSecretVersion", 0)
    assert store.sync.get("db") == "one" and store.sync.get("db") == "one"
    assert fake.calls["AccessSecretVersion"] == before + 1
    fake_store = _store(fake, store.prefix)
    store.put("db", "two")  # put forgets its own cache entry
    assert store.sync.get("db") == "two"
    assert fake_store.sync.get("db") == "two"


def test_fake_pinned_and_disabled_versions(fake: FakeSecretManager) -> None:
    store = _store(fake, cache_ttl="0")
    store.put("k", "v1")
    store.put("k", "v2")
    pinned = _store(fake, store.prefix, version="1", cache_ttl="0")
    assert pinned.sync.get("k") == "v1" and store.sync.get("k") == "v2"
    fake.disable(f"projects/p1/secrets/{store.prefix}-k", 2)
    assert store.sync.get("k") == "v1"
    with pytest.raises(Conflict):  # FAILED_PRECONDITION: the version is disabled
        _store(fake, store.prefix, version="2").sync.get("k")
    with pytest.raises(NotFound) as info:
        _store(fake, store.prefix, version="9").sync.get("k")
    assert "'k'" in str(info.value)


def test_fake_names_are_checked_before_any_call(fake: FakeSecretManager) -> None:
    store = _store(fake)
    before = dict(fake.calls)
    for bad in ("a/b", "dots.here", "x" * 250):
        with pytest.raises(InvalidArgument):
            store.sync.get(bad)
    assert fake.calls == before
    with pytest.raises(ConfigError):
        overcast.open_secrets("gsm://bad.prefix?project=p")
    with pytest.raises(ConfigError):
        overcast.open_secrets(f"gsm://ok?project=p&version=first&emulator={fake.address}")
