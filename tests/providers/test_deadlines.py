"""Every provider's call has a deadline: against a closed port (nothing listens) and a blackhole
(the fault proxy in front of the real server, accepting and never answering) a call raises
Overcast's ``Unavailable`` within a bound of its ``timeout`` instead of holding the caller
for the SDK's minutes of retries.

Each call runs in a fresh process (deadline_probe.py: the Google clients read their emulator
host once per process). The bounds are generous (``timeout * 3 + 2`` s): they catch a call
that waits out an SDK's defaults (60-300 s), not a slow machine. Key Vault and Secret
Manager have no emulator: their cases stand the FAKE servers of their secrets tests behind
the proxy (named ``fake`` below). Momento's is in momento/test_momento_deadline_fake.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deadline_probe import CASES, Case, default_timeout, probe

import overcast
from chaos.proxy import BLACKHOLE, FaultProxy
from overcast.errors import Unavailable
from servers import Server, free_port

REAL = [case for case in CASES if not case.server.startswith("fake_")]
#: the secret stores with no emulator, against the fake servers of their own tests
FAKES = [case for case in CASES if case.server in ("fake_keyvault", "fake_secret_manager")]
#: the blackholed calls run with a short deadline, so that the bound says it was applied
TIMEOUT = 1.0


def bound(timeout: float) -> float:
    return timeout * 3 + 2


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Server:
    case: Case = request.param
    found: Server = request.getfixturevalue(case.server)
    return found


@pytest.fixture
def blackhole(server: Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.port)
    proxy.set(BLACKHOLE)
    yield proxy
    proxy.close()


def _unavailable(case: Case, result: dict[str, object]) -> None:
    assert (result["module"], result["error"]) == ("overcast.errors", "Unavailable"), (case.name, result)


@pytest.mark.parametrize("case", REAL, ids=[c.name for c in REAL])
def test_a_closed_port_fails_fast_as_unavailable_with_the_defaults(case: Case) -> None:
    result = probe(case, free_port(), limit=60)
    _unavailable(case, result)
    # a refused connection is not retried for long: the first call (which builds the client)
    # well inside the deadline, the same call again within a second
    assert float(result["elapsed"]) < bound(default_timeout(case)), (case.name, result)  # type: ignore[arg-type]
    assert float(result["again"]) < 1.0, (case.name, result)  # type: ignore[arg-type]


@pytest.mark.parametrize(("case", "server"), [(c, c) for c in REAL], ids=[c.name for c in REAL], indirect=["server"])
def test_a_blackholed_server_fails_within_the_timeout_option_as_unavailable(case: Case, blackhole: FaultProxy) -> None:
    result = probe(case, blackhole.port, f"timeout={TIMEOUT}", limit=60)
    _unavailable(case, result)
    elapsed = float(result["elapsed"])  # type: ignore[arg-type]
    assert elapsed < bound(TIMEOUT), (case.name, result)
    # and it did wait for an answer (the proxy accepted): not an error raised before trying
    assert elapsed >= TIMEOUT * 0.5, (case.name, result)


@pytest.mark.parametrize(
    ("case", "server"),
    [(c, c) for c in REAL if c.name in ("redis kv", "postgres kv", "s3", "azure blob", "firestore")],
    ids=["redis", "postgres", "aws", "azure", "gcp"],
    indirect=["server"],
)
def test_a_blackholed_server_fails_within_the_default_deadline(case: Case, blackhole: FaultProxy) -> None:
    result = probe(case, blackhole.port, limit=90)
    _unavailable(case, result)
    assert float(result["elapsed"]) < bound(default_timeout(case)), (case.name, result)  # type: ignore[arg-type]


def _start_fake(name: str) -> tuple[int, Callable[[], None]]:
    """The port of a fresh fake server ``name``, and what stops it."""
    if name == "fake_keyvault":
        from providers.azure.fake_keyvault import start_fake_keyvault

        vault = start_fake_keyvault(apply_env=False)
        return vault.port, vault.stop
    from providers.gcp.fake_secret_manager import FakeSecretManager

    manager = FakeSecretManager().start()
    return manager.port, manager.stop


@pytest.fixture
def fake_blackhole(request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    port, stop = _start_fake(request.param.server)
    proxy = FaultProxy(port)
    proxy.set(BLACKHOLE)
    yield proxy
    proxy.close()
    stop()


@pytest.mark.parametrize("case", FAKES, ids=[c.name for c in FAKES])
def test_fake_secret_store_on_a_closed_port_fails_fast_as_unavailable(case: Case) -> None:
    result = probe(case, free_port(), limit=60)
    _unavailable(case, result)
    assert float(result["elapsed"]) < bound(default_timeout(case)), (case.name, result)  # type: ignore[arg-type]
    assert float(result["again"]) < 1.0, (case.name, result)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [TIMEOUT, None], ids=["option", "default"])
@pytest.mark.parametrize(
    ("case", "fake_blackhole"), [(c, c) for c in FAKES], ids=[c.name for c in FAKES], indirect=["fake_blackhole"]
)
def test_fake_secret_store_blackholed_fails_within_the_deadline(
    case: Case, fake_blackhole: FaultProxy, timeout: float | None
) -> None:
    result = probe(case, fake_blackhole.port, "" if timeout is None else f"timeout={timeout:g}", limit=90)
    _unavailable(case, result)
    seconds = timeout or default_timeout(case)
    elapsed = float(result["elapsed"])  # type: ignore[arg-type]
    assert seconds * 0.5 <= elapsed < bound(seconds), (case.name, result)


# -- embedded: no port; what stands for a server that is gone is a file that cannot be used, and
# what stands for one that never answers is another writer holding SQLite's write lock


def test_embedded_sqlite_on_a_file_that_cannot_be_made_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    store = overcast.open_kv(f"sqlite:///{tmp_path}/a-file/kv.db")
    start = time.monotonic()
    with pytest.raises(Unavailable, match="a-file"):
        store.sync.put("k", {"n": 1})
    assert time.monotonic() - start < 1.0


def test_embedded_sqlite_waits_for_another_writer_at_most_its_timeout(tmp_path: Path) -> None:
    """A write waits for the write lock at most the URL's ``timeout`` and then raises
    ``Unavailable`` naming it; reads go on meanwhile (WAL). (Many processes on one file:
    tests/providers/local/test_contention.py and test_embedded_deadline.py.)"""
    store = overcast.open_kv(f"sqlite:///{tmp_path}/kv.db?timeout={TIMEOUT}")
    store.sync.put("k", {"n": 1})
    holder = sqlite3.connect(tmp_path / "kv.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer that never commits
    try:
        start = time.monotonic()
        item = store.sync.get("k")
        assert item is not None and item.value == {"n": 1} and time.monotonic() - start < 1.0
        with pytest.raises(Unavailable, match="stayed locked"):
            store.sync.put("k", {"n": 2})
        elapsed = time.monotonic() - start
        assert TIMEOUT * 0.9 <= elapsed < bound(TIMEOUT), elapsed
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.sync.put("k", {"n": 3})  # the lock released: writes go through again
    store.close()
