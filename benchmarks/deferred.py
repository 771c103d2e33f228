"""Deferred processing: what it adds on the healthy path, and how fast a backlog replays.

1. A delivery through ``runtime.dispatch.deliver`` to a ``critical=False`` subscriber
   against the same delivery to a critical one (same no-op handler, a platform-settled
   queue: no I/O), alternating rounds. Goal: ≤ 2 µs added.
2. A call of an ``@app.deferrable`` function while healthy against awaiting the plain
   function (two JSON arguments). Goal: ≤ 2 µs added.
3. Replay throughput of a SQLite backlog (``Replayer.drain``, no rate limit to speak of)
   against direct delivery of the same handler from a SQLite queue (receive 10, deliver,
   ack, as ``overcast dev`` does), items per second. Goal: ≥ 0.8x.

    .venv/bin/python benchmarks/deferred.py [--quick]
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, per_op_us_async

import overcast
from overcast.resources.queue import Message
from overcast.runtime.deferral import subscription_deferral, subscription_replayer
from overcast.runtime.dispatch import PlatformSettled, deliver


def make_app(folder: Path) -> overcast.App:
    (folder / "overcast.toml").write_text("[targets.local]\n")
    app = overcast.App("benchdefer", config=folder / "overcast.toml")
    critical_q, lazy_q, direct_q = app.queue("critical"), app.queue("lazy"), app.queue("direct")

    async def nothing(event: Any) -> None:
        return None

    app.subscribe(critical_q, name="on_critical")(nothing)
    app.subscribe(lazy_q, critical=False, name="on_lazy")(nothing)
    app.subscribe(direct_q, critical=False, name="on_direct")(nothing)
    return app


def healthy_path(app: overcast.App, loop: asyncio.AbstractEventLoop, n: int, rounds: int) -> None:
    settled = PlatformSettled("memory://settled", name="settled")
    message = Message("m-1", {"n": 1}, {}, 1, "r-1")
    critical, lazy = app.subscriptions[0], app.subscriptions[1]
    ours, base = Result("non-critical", "us"), Result("critical", "us")
    interleave(
        rounds,
        (ours, per_op_us_async(loop, n, lambda: deliver(lazy, settled, message, app=app.name))),
        (base, per_op_us_async(loop, n, lambda: deliver(critical, settled, message, app=app.name))),
    )
    row("delivery, non-critical vs critical", ours, base, "≤ 2 µs added")

    async def plain(to: str, subject: str) -> str:
        return to

    deferrable = app.deferrable(name="send_mail")(plain)
    ours, base = Result("deferrable", "us"), Result("plain", "us")
    interleave(
        rounds,
        (ours, per_op_us_async(loop, n, lambda: deferrable("a@example.com", "hi"))),
        (base, per_op_us_async(loop, n, lambda: plain("a@example.com", "hi"))),
    )
    row("deferrable call vs plain call", ours, base, "≤ 2 µs added")


def row(label: str, ours: Result, base: Result, goal: str) -> None:
    added = ours.median - base.median
    print(
        f"{label:<38} {ours.median:>7.2f} µs {base.median:>7.2f} µs {added:>+6.2f} µs "
        f"{ours.median / base.median:>6.2f}x  {goal}"
    )


async def direct_rate(app: overcast.App, items: int) -> float:
    """Items a second delivered straight from a SQLite queue to the handler."""
    queue, sub = app.resources["direct"], app.subscriptions[2]
    for n in range(items):
        await queue.send({"n": n})
    started = time.perf_counter()
    while got := await queue.receive(max_messages=10):
        for message in got:
            await deliver(sub, queue, message, app=app.name)
    return items / (time.perf_counter() - started)


async def replay_rate(app: overcast.App, items: int) -> float:
    """Items a second replayed from the same subscriber's SQLite backlog."""
    sub = app.subscriptions[2]
    deferral = subscription_deferral(sub, app.name)
    for n in range(items):
        await deferral.park("event", {"event": {"id": f"e{n}", "source": "bench", "type": "t", "data": {}}}, None)
    replayer = subscription_replayer(sub, app=app.name, rate=1e9, wait=0)
    started = time.perf_counter()
    stats = await replayer.drain(timeout=600)
    assert stats.replayed >= items
    return items / (time.perf_counter() - started)


def throughput(app: overcast.App, loop: asyncio.AbstractEventLoop, items: int, rounds: int) -> None:
    loop.run_until_complete(app.resources["direct"].create())
    ours, base = Result("replay", "items/s"), Result("direct", "items/s")
    interleave(
        rounds,
        (ours, lambda: loop.run_until_complete(replay_rate(app, items))),
        (base, lambda: loop.run_until_complete(direct_rate(app, items))),
    )
    print(
        f"{'replay vs direct delivery (SQLite)':<38} {ours.median:>7.0f} /s {base.median:>7.0f} /s "
        f"{'':>9} {ours.median / base.median:>6.2f}x  ≥ 0.8x"
    )


def main() -> None:
    args = arguments(__doc__ or "")
    n = 2_000 if args.quick else 20_000
    rounds = 3 if args.quick else 15
    items = 100 if args.quick else 1_000
    logging.disable(logging.INFO)  # the per-delivery log line is the same on both sides; keep it out
    app = make_app(Path(tempfile.mkdtemp()))
    loop = asyncio.new_event_loop()
    print("\nDeferred processing on the healthy path, median of", rounds, "rounds")
    print(f"{'measure':<38} {'overcast':>10} {'baseline':>10} {'added':>9} {'ratio':>7}  goal")
    healthy_path(app, loop, n, rounds)
    throughput(app, loop, items, 3 if args.quick else 5)
    app.reset()
    loop.close()


if __name__ == "__main__":
    main()
