"""The Azure providers under the conformance suites: the storage ones on Azurite
(tests/servers/azure.py); Key Vault against a FAKE Key Vault (tests/providers/azure/
fake_keyvault.py, started on first use, one per test process), since no emulator exists."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..providers import Case

_fake: Any = None
_lock = threading.Lock()


def _tables(tmp: Path, name: str) -> str:
    return "azuretables://" + name.replace("-", "")


def _blob(tmp: Path, name: str) -> str:
    return f"azblob://{name}/some/prefix"


def _queue(tmp: Path, name: str) -> str:
    return f"azqueue://{name}"


def _fake_keyvault() -> Any:
    global _fake
    with _lock:
        if _fake is None:
            from providers.azure.fake_keyvault import start_fake_keyvault

            _fake = start_fake_keyvault()
    return _fake


def _keyvault(tmp: Path, name: str) -> str:
    # The fake is one vault per process: each store gets its own secret-name space
    # through a bound path only when asked, so a fresh fake state per URL is not needed
    # (every test writes the names it reads first).
    return _fake_keyvault().url()


def _set_keyvault(url: str, name: str, value: str) -> None:
    from overcast.providers.azure.keyvault import vault_secret_name

    _fake_keyvault().set(vault_secret_name(name, resource=url), value)


CASES: list[Case] = [
    Case("kv", "azuretables", _tables, server="azurite", title="AzureTables"),
    Case("bucket", "azblob", _blob, server="azurite", title="AzureBlob"),
    Case("queue", "azqueue", _queue, server="azurite", title="AzureQueue"),
    Case("topic", "azqueue", _queue, server="azurite", title="AzureTopic"),
    Case("secret", "keyvault", _keyvault, set_secret=_set_keyvault, title="KeyVaultFake"),
]
