"""Azure unit rules against Azurite: the requests each Overcast operation sends to Table,
Blob and Queue storage, counted by recording proxies in front of the real Azurite, are the
transactions the rule prices."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from counting_proxy import CountingProxy, Seen, counting
from drivers import DRIVERS
from rules_support import apis, offer

import overcast

CONN_ENV = "OVERCAST_COST_TEST_AZURE"


@pytest.fixture(scope="module")
def proxies(azurite: Any) -> Iterator[dict[str, CountingProxy]]:
    """One recording proxy per Azurite service, and a connection string naming them."""
    ports = dict(
        re.findall(
            r"(Blob|Queue|Table)Endpoint=http://127\.0\.0\.1:(\d+)", azurite.env["AZURE_STORAGE_CONNECTION_STRING"]
        )
    )
    with (
        counting(f"127.0.0.1:{ports['Blob']}") as blob,
        counting(f"127.0.0.1:{ports['Queue']}") as queue,
        counting(f"127.0.0.1:{ports['Table']}") as table,
    ):
        conn = azurite.env["AZURE_STORAGE_CONNECTION_STRING"]
        for service, proxy in (("Blob", blob), ("Queue", queue), ("Table", table)):
            conn = conn.replace(f"127.0.0.1:{ports[service]}", f"127.0.0.1:{proxy.port}")
        os.environ[CONN_ENV] = conn
        yield {"kv": table, "bucket": blob, "queue": queue, "topic": queue}
        os.environ.pop(CONN_ENV, None)


def azure_api(seen: Seen) -> str:
    """What a storage request is: its verb and what it names (entity, query, blob, list, message)."""
    parts = urlsplit(seen.path)
    path = parts.path.split("/")[2:]  # after /devstoreaccount1/
    query = parse_qs(parts.query)
    if seen.path.startswith("/devstoreaccount1?") or path == [""]:
        return f"{seen.method} queues" if query.get("comp") == ["list"] else f"{seen.method} account"
    if "(" in path[0]:
        return f"{seen.method} {'query' if path[0].endswith('()') else 'entity'}"
    if path[-1] == "messages":
        return f"{seen.method} {'message' if seen.method == 'POST' else 'messages'}"
    if len(path) >= 2 and path[-2] == "messages":
        return f"{seen.method} message"
    if len(path) == 1:
        if query.get("comp") == ["list"]:
            return f"{seen.method} list"
        return f"{seen.method} {'entity' if seen.method == 'POST' else 'query'}"
    return f"{seen.method} blob"


STORES = {
    "kv": "azuretables://t{u}?connection_env=" + CONN_ENV,
    "bucket": "azblob://c{u}?connection_env=" + CONN_ENV,
    "queue": "azqueue://q-{u}?connection_env=" + CONN_ENV,
    "topic": "azqueue://t-{u}?connection_env=" + CONN_ENV,
}
OPS = {
    "kv": ["get", "put", "put_conditional", "put_absent", "delete", "scan"],
    "bucket": ["put", "get", "head", "delete", "list"],
    "queue": ["send", "receive", "ack"],
    "topic": ["publish"],
}
CASES = [(kind, op) for kind in STORES for op in OPS[kind]]


@pytest.mark.parametrize(("kind", "op"), CASES, ids=[f"{k}-{o}" for k, o in CASES])
def test_each_operation_sends_what_its_rule_prices(proxies: dict[str, CountingProxy], kind: str, op: str) -> None:
    store = getattr(overcast, f"open_{kind}")(STORES[kind].format(u=uuid.uuid4().hex[:10]))
    store.sync.create()
    rule = offer("azure", kind, store.location.scheme)
    sent = DRIVERS[kind](store, op, 3000, proxies[kind].take)
    assert [azure_api(s) for s in sent] == apis(rule.calls(op, 3000)), [(s.method, s.path) for s in sent]
    store.close()
