"""The Momento cache against the raw momento SDK doing the same work, on the FAKE Momento server.

No Momento server runs here: the fake of tests/providers/momento/fake_momento.py serves
Momento's gRPC API in a separate process, and both sides talk to it through the real SDK
(plain-text gRPC, ``CredentialProvider.for_momento_local``). Per operation: get (raw: Get +
json), set (raw: Set with a TTL + json), incr (raw: Increment). The absolute times say
nothing about Momento's service; the ratio is Overcast's overhead over the SDK.
Goal: within 1.05x.

    .venv/bin/python benchmarks/momento_cache.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, per_op_us, report
from momento import CacheClient, Configurations, CredentialProvider

import overcast
from overcast.resources import bridge

FAKE = Path(__file__).resolve().parent.parent / "tests" / "providers" / "momento"
SERVE = (
    "import sys, time; sys.path.insert(0, sys.argv[1]);"
    "from fake_momento import start_fake_momento; fake = start_fake_momento();"
    "print(fake.port, flush=True); time.sleep(1e9)"
)


def main() -> None:
    args = arguments(__doc__ or "")
    n = 100 if args.quick else 300
    rounds = 4 if args.quick else 30
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(FAKE)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        cache = overcast.open_cache(f"momento://bench?local=127.0.0.1:{port}")
        bridge.run_sync(cache.create())
        sync = cache.sync
        raw = CacheClient(
            Configurations.Laptop.latest(), CredentialProvider.for_momento_local("127.0.0.1", port), timedelta(hours=1)
        )
        doc = {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com", "tags": ["a", "b"]}
        sync.set("k", doc)
        raw.set("bench", "raw:k", json.dumps(doc, separators=(",", ":")).encode(), timedelta(minutes=5))

        def raw_get() -> Any:
            return json.loads(raw.get("bench", "raw:k").value_bytes)  # type: ignore[union-attr]

        pairs = {
            "cache get": (lambda: sync.get("k"), raw_get),
            "cache set": (
                lambda: sync.set("k", doc, ttl=300),
                lambda: raw.set(
                    "bench", "raw:k", json.dumps(doc, separators=(",", ":")).encode(), timedelta(seconds=300)
                ),
            ),
            "cache incr": (lambda: sync.incr("n"), lambda: raw.increment("bench", "raw:n", 1, timedelta(hours=1))),
        }
        results = {name: (Result(name, "us"), Result("raw " + name, "us")) for name in pairs}
        for round_ in range(rounds):
            for name, (ours, theirs) in pairs.items():
                pair = [(results[name][0], per_op_us(n, ours)), (results[name][1], per_op_us(n, theirs))]
                interleave(1, *(pair if round_ % 2 else pair[::-1]))
        rows = [(name, ours, theirs, "<= 1.05x") for name, (ours, theirs) in results.items()]
        report(f"Momento cache vs the momento SDK on the FAKE server ({n} ops per round, median of {rounds})", rows)
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
