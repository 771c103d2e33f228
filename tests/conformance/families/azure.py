"""The Azure providers under the conformance suites, on Azurite (tests/servers/azure.py) and,
for Key Vault, on the fake Key Vault of tests/providers/azure/fake_keyvault.py."""

from __future__ import annotations

from pathlib import Path

from ..providers import Case


def _tables(tmp: Path, name: str) -> str:
    return "azuretables://" + name.replace("-", "")


def _blob(tmp: Path, name: str) -> str:
    return f"azblob://{name}/some/prefix"


def _queue(tmp: Path, name: str) -> str:
    return f"azqueue://{name}"


CASES: list[Case] = [
    Case("bucket", "azblob", _blob, server="azurite", title="AzureBlob"),
]
CASES.append(Case("kv", "azuretables", _tables, server="azurite", title="AzureTables"))
CASES.append(Case("queue", "azqueue", _queue, server="azurite", title="AzureQueue"))
CASES.append(Case("topic", "azqueue", _queue, server="azurite", title="AzureTopic"))
