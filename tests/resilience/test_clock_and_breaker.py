"""Hybrid logical clocks and circuit breakers: the two small parts every replicated store rests on."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import overcast
from chaos.proxy import FaultProxy
from overcast.errors import Conflict, NotFound, PermissionDenied, Throttled, Unavailable
from overcast.resilience.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from overcast.resilience.clock import HybridClock, is_clock, wall_ms
from resilience.pairs import replicated_url
from servers import Server


def test_clock_values_order_as_strings_and_never_go_back() -> None:
    clock = HybridClock("a")
    values = [clock.now() for _ in range(2000)]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(is_clock(v) for v in values)
    assert abs(wall_ms(values[-1]) / 1000 - time.time()) < 5


def test_a_clock_seen_from_elsewhere_is_passed() -> None:
    ahead = f"{int(time.time() * 1000) + 60_000:013x}{7:06x}-b"  # a writer whose clock runs a minute fast
    clock = HybridClock("a")
    clock.observe(ahead)
    after = clock.now()
    assert after > ahead and wall_ms(after) == wall_ms(ahead)


def test_clocks_of_threads_never_collide() -> None:
    clock, seen, lock = HybridClock("t"), [], threading.Lock()

    def work() -> None:
        mine = [clock.now() for _ in range(500)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 2000


def test_only_unavailability_opens_a_breaker_and_a_probe_closes_it() -> None:
    breaker = Breaker("x://y", threshold=2, cooldown=0.2)
    for answer in (NotFound("n"), Conflict("c"), PermissionDenied("p")):
        breaker.failed(answer)
        breaker.failed(answer)
    assert breaker.state == CLOSED  # the service answered, however unwelcome
    breaker.failed(Unavailable("down"))
    assert breaker.state == CLOSED and breaker.allows()
    breaker.failed(Throttled("slow down"))
    assert breaker.state == OPEN and not breaker.allows()
    time.sleep(0.25)
    assert breaker.state == HALF_OPEN
    assert breaker.allows() and not breaker.allows()  # one probe at a time
    breaker.failed(TimeoutError())
    assert breaker.state == OPEN  # the probe failed: open again for a cooldown
    time.sleep(0.25)
    assert breaker.allows()
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.transitions[OPEN] == 2 and breaker.transitions[CLOSED] == 1


def test_read_nearest_reads_the_member_that_answers_fastest(redis_server: Server, tmp_path: Path) -> None:
    """Redis behind a proxy adding 20 ms each way, SQLite beside the code: after a few reads,
    read-nearest goes to SQLite although Redis is the primary."""
    proxy = FaultProxy(redis_server.port)
    proxy.delay = 0.02
    primary = f"redis://127.0.0.1:{proxy.port}/0?prefix=nearest"
    store: Any = overcast.open_kv(replicated_url(primary, [f"sqlite:///{tmp_path}/r.db"], mode="read-nearest"))
    try:
        store.sync.put("k", {"n": 1})
        asyncio.run(store.replicate())
        for _ in range(6):
            assert store.sync.get("k").value == {"n": 1}
        slow, fast = store.members
        assert fast.latency < slow.latency
        assert store._order()[0] is fast
    finally:
        store.close()
        proxy.close()


def test_a_bad_option_names_the_choices() -> None:
    with pytest.raises(overcast.errors.ConfigError, match="mode"):
        overcast.open_kv(replicated_url("memory://a", ["memory://b"], mode="fastest"))
