"""The Momento cache's deadline against a closed port and against the FAKE Momento server
(fake_momento.py) behind the fault proxy in blackhole mode: ``Unavailable`` within a bound of
the ``timeout`` option, where the SDK's laptop preset waits 15 s per attempt, three attempts.
The other families' deadlines are in tests/providers/test_deadlines.py, on real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_momento import FakeMomento, start_fake_momento

from chaos.proxy import BLACKHOLE, FaultProxy
from providers.deadline_probe import CASES, default_timeout, probe
from servers import free_port

CASE = next(case for case in CASES if case.family == "momento")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMomento]:
    server = start_fake_momento()
    yield server
    server.stop()


@pytest.fixture
def blackhole(fake: FakeMomento) -> Iterator[FaultProxy]:
    proxy = FaultProxy(fake.port)
    proxy.set(BLACKHOLE)
    yield proxy
    proxy.close()


def _unavailable(result: dict[str, object]) -> None:
    assert (result["module"], result["error"]) == ("overcast.errors", "Unavailable"), result


def test_fake_closed_port_fails_fast_as_unavailable() -> None:
    result = probe(CASE, free_port(), limit=60)
    _unavailable(result)
    assert float(result["elapsed"]) < default_timeout(CASE) * 3 + 2, result  # type: ignore[arg-type]
    assert float(result["again"]) < 1.0, result  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [1.0, None], ids=["option", "default"])
def test_fake_blackholed_server_fails_within_the_deadline(blackhole: FaultProxy, timeout: float | None) -> None:
    result = probe(CASE, blackhole.port, "" if timeout is None else f"timeout={timeout}", limit=90)
    _unavailable(result)
    seconds = timeout or default_timeout(CASE)
    assert float(result["elapsed"]) < seconds * 3 + 2, result  # type: ignore[arg-type]
    assert float(result["elapsed"]) >= seconds * 0.5, result  # type: ignore[arg-type]
