"""Secret reads against the FAKE Secret Manager and FAKE Key Vault (no real server of either
exists here; the fakes speak the real wire protocols to the real SDKs and count what they
receive): two reads within the cache TTL are one billed call, the one the rule names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from rules_support import apis, offer

import overcast
from providers.azure.fake_keyvault import FakeKeyVault, start_fake_keyvault
from providers.gcp.fake_secret_manager import running_fake


def test_fake_secret_manager_two_reads_are_one_access() -> None:
    fake = running_fake()
    store = overcast.open_secrets(f"gsm://app-{uuid.uuid4().hex[:8]}?project=p1&emulator={fake.address}")
    store.put("db", "one")  # type: ignore[attr-defined]
    before = dict(fake.calls)
    assert store.sync.get("db") == "one" and store.sync.get("db") == "one"
    sent = {m: n - before.get(m, 0) for m, n in fake.calls.items() if n != before.get(m, 0)}
    assert sent == {name: 1 for name in apis(offer("gcp", "secret", "gsm").calls("get", 10))}


@pytest.fixture(scope="module")
def keyvault() -> Iterator[FakeKeyVault]:
    fake = start_fake_keyvault()
    yield fake
    fake.stop()


def test_fake_key_vault_two_reads_are_one_operation(keyvault: FakeKeyVault) -> None:
    keyvault.set("greeting", "hello")
    overcast.open_secrets(keyvault.url(cache_ttl=0)).sync.get("greeting")  # the SDK's first call is challenged
    store = overcast.open_secrets(keyvault.url())
    before = len(keyvault.requests)
    assert store.sync.get("greeting") == "hello" and store.sync.get("greeting") == "hello"
    sent = [(method, path) for method, path, authorized in keyvault.requests[before:] if authorized]
    assert [f"{method} secret" for method, path in sent if path.startswith("/secrets/")] == apis(
        offer("azure", "secret", "keyvault").calls("get", 10)
    )
