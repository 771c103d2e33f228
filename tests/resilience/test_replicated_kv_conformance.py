"""The KV conformance suite, unchanged, on replicated stores over pairs of real providers,
directly and through an App handle, in both ack modes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.providers import open_through_app
from overcast.resilience.replicated_kv import ReplicatedKeyValueStore
from overcast.resources.registry import resolve
from overcast.testing.conformance import KeyValueStoreSuite
from resilience.pairs import KV_PAIRS, MEMBERS, member_urls, replicated_url


def _suite(pair: tuple[str, str], ack: str, via_app: bool) -> type[Any]:
    capabilities = frozenset.intersection(
        *(frozenset(resolve("kv", scheme, resource="conformance").capabilities) for scheme in pair)
    ) - {"put_if_newer", "put_with_log"}  # the members' own: they compare their envelopes

    def make_url(self: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
        for scheme in pair:
            server = MEMBERS[scheme][0]
            if server is not None:
                request.getfixturevalue(server)
        # a generous deadline: these tests check semantics; a loaded CI machine must not fail over
        return lambda: replicated_url(*_split(_members(pair, tmp_path, request)), ack=ack, timeout="10s")

    body: dict[str, Any] = {
        "provider": ReplicatedKeyValueStore,
        "capabilities": capabilities,
        "make_url": pytest.fixture(make_url),
    }
    if any(MEMBERS[scheme][0] is not None for scheme in pair):
        # every write is a read, a conditional put and a log entry on two servers: the
        # pagination test's item count is halved to keep CI's time (2,500 still spans pages)
        body["many"] = 2500
    if via_app:

        def open_store(self: Any, tmp_path: Path) -> Callable[[str], Any]:
            return lambda url: open_through_app("kv", url, tmp_path)

        body["open_store"] = pytest.fixture(open_store)
    return type("Suite", (KeyValueStoreSuite,), body)


def _members(pair: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    urls = member_urls(pair, tmp_path)
    if request.node.name.startswith("test_pagination_over_many_items"):
        # a write on DynamoDB is one TransactWriteItems (the document and its log entry), and moto
        # deep-copies the whole table for each item of one (to roll back): O(table) per write,
        # which over this test's 2,500 items holds calls past the deadline. Here the store writes
        # both with PutItem (transactions=false); the transaction is tested by the other cases.
        urls = [url + "&transactions=false" if url.startswith("dynamodb://") else url for url in urls]
    return urls


def _split(urls: list[str]) -> tuple[str, list[str]]:
    return urls[0], urls[1:]


def _title(scheme: str) -> str:
    return {"dynamodb": "DynamoDB", "azuretables": "AzureTables", "postgresql": "Postgres"}.get(
        scheme, scheme.capitalize()
    )


#: ack = "all" on one embedded and one cross-cloud pair; through an App handle on two pairs
_ACK_ALL = {("sqlite", "sqlite"), ("dynamodb", "firestore")}
_VIA_APP = {("memory", "sqlite"), ("redis", "sqlite")}

for _pair in KV_PAIRS:
    _stem = f"TestReplicated{_title(_pair[0])}{_title(_pair[1])}"
    globals()[f"{_stem}AckPrimary"] = type(f"{_stem}AckPrimary", (_suite(_pair, "primary", False),), {})
    if _pair in _ACK_ALL:
        globals()[f"{_stem}AckAll"] = type(f"{_stem}AckAll", (_suite(_pair, "all", False),), {})
    if _pair in _VIA_APP:
        globals()[f"{_stem}ViaApp"] = type(f"{_stem}ViaApp", (_suite(_pair, "primary", True),), {})
