"""What an App handle adds to a call over the provider it reaches, telemetry off and on.

A memory:// KV get (the cheapest provider: what the handle adds is not hidden behind I/O)
through ``app.kv(name)`` against the bare provider class (constructed, not opened, so
without its timed wrapper), on the blocking and the async face, alternating rounds. The
handle reaches the provider through its timed wrapper: off, the difference is the
handle's and the wrapper's flag check; on (``overcast.telemetry.configure`` with an
in-memory reader: metrics, no spans), it includes the timing itself. Goals: ≤ 1 µs added
off, ≤ 2 µs on.

    .venv/bin/python benchmarks/handle_overhead.py [--quick]
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import Result, arguments, interleave, per_op_us, per_op_us_async
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import overcast
from overcast import telemetry
from overcast.providers.local.memory import MemoryKeyValueStore


def measured(mode: str, run: Callable[[], float]) -> Callable[[], float]:
    """``run`` with telemetry ``mode``, turned on for this round only (nothing piles up unread)."""

    def timed() -> float:
        if mode == "on":
            telemetry.configure(metric_readers=[InMemoryMetricReader()], span_processors=[], set_global=False)
        try:
            return run()
        finally:
            telemetry.shutdown()

    return timed


def main() -> None:
    args = arguments(__doc__ or "")
    n = 5_000 if args.quick else 50_000
    rounds = 3 if args.quick else 21
    name = f"bench-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp())
    (folder / "overcast.toml").write_text(f'[targets.local]\nkv.users = "memory://{name}"\n')
    app = overcast.App("bench", config=folder)
    handle = app.kv("users")
    bare = MemoryKeyValueStore(f"memory://{name}", name="users")
    bare.sync.put("k", {"v": 1})
    loop = asyncio.new_event_loop()
    print("\nA handle call over the bare provider (memory:// KV get), median of", rounds, "rounds")
    print(f"{'face':<8} {'telemetry':<10} {'handle':>9} {'bare':>9} {'added':>9} {'ratio':>7}  goal")
    for mode in ("off", "on"):
        for face in ("sync", "async"):
            ours, base = Result("handle", "us"), Result("bare", "us")
            if face == "sync":
                on_handle, on_bare = (
                    per_op_us(n, lambda: handle.sync.get("k")),
                    per_op_us(n, lambda: bare.sync.get("k")),
                )
            else:
                on_handle = per_op_us_async(loop, n, lambda: handle.get("k"))
                on_bare = per_op_us_async(loop, n, lambda: bare.get("k"))
            interleave(rounds, (ours, measured(mode, on_handle)), (base, measured(mode, on_bare)))
            added = ours.median - base.median
            goal = "≤ 1 µs" if mode == "off" else "≤ 2 µs"
            print(
                f"{face:<8} {mode:<10} {ours.median:>6.2f} µs {base.median:>6.2f} µs {added:>+6.2f} µs "
                f"{ours.median / base.median:>6.2f}x  {goal}"
            )
    telemetry.shutdown()
    loop.close()


if __name__ == "__main__":
    main()
