"""What one provider call costs when its server is gone: a closed port (nothing listens) and a
blackhole (the test's fault proxy in front of the real server, accepting and never answering).

For each family and kind it times one call (get, head, send or publish) in a fresh process
(tests/providers/deadline_probe.py), with the provider's defaults, and prints the seconds and
what was raised. The goal: a refused connection fails in well under a second, a blackhole
within the provider's deadline (the URL option ``timeout``), both as ``Unavailable``.
Starts the real servers itself (tests/servers), like the tests.

    .venv/bin/python benchmarks/deadlines.py [--quick] [--only NAME] [--extra QUERY] [--src DIR]

``--src`` measures another checkout instead, e.g. the code before deadlines existed:
``git archive 0781733 src | tar -x -C /tmp/base`` then ``--src /tmp/base/src``.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "providers"), str(ROOT / "tests" / "providers" / "momento")]

from deadline_probe import CASES, Case, default_timeout, probe  # noqa: E402

from chaos.proxy import BLACKHOLE, FaultProxy  # noqa: E402
from servers import Server, free_port  # noqa: E402


def _start(name: str) -> tuple[int, Any]:
    """The port of a running ``name`` server, and what stops it."""
    if name == "fake_momento":
        from fake_momento import start_fake_momento

        fake = start_fake_momento()
        return fake.port, fake.stop
    if name == "fake_keyvault":  # no emulator exists: the fake server of the secrets tests
        from providers.azure.fake_keyvault import start_fake_keyvault

        vault = start_fake_keyvault(apply_env=False)
        return vault.port, vault.stop
    if name == "fake_secret_manager":
        from providers.gcp.fake_secret_manager import FakeSecretManager

        manager = FakeSecretManager().start()
        return manager.port, manager.stop
    from servers import aws, azure, gcp, postgres, redis

    for module in (aws, azure, gcp, postgres, redis):
        start = getattr(module, "FIXTURES", {}).get(name)
        if start is not None:
            server: Server = start()
            return server.port, server.stop
    raise KeyError(name)


def _row(case: Case, closed: dict[str, Any], hole: dict[str, Any]) -> str:
    def cell(result: dict[str, Any]) -> str:
        again = "" if result["again"] is None else f"{result['again']:.2f}"
        return f"{result['elapsed']:>7.2f} {again:>7} s  {result['error'] or 'answered':<12}"

    seconds = default_timeout(case)
    ratio = (hole["again"] or hole["elapsed"]) / seconds
    return f"{case.name:<22} {cell(closed)} {cell(hole)} {ratio:>6.2f}x of {seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="cap each call at 20 s (a smoke run)")
    parser.add_argument("--only", help="one case, by name (e.g. 'azure blob')")
    parser.add_argument("--extra", default="", help="query appended to each URL, e.g. timeout=1")
    parser.add_argument("--src", help="measure another checkout's src (e.g. one made by git archive of a commit)")
    args = parser.parse_args()
    if args.src:
        os.environ["OVERCAST_DEADLINE_SRC"] = str(Path(args.src).resolve())
    limit = 20.0 if args.quick else 150.0
    cases = [c for c in CASES if args.only in (None, c.name, c.family)]
    servers = {name: _start(name) for name in sorted({c.server for c in cases})}
    proxies = {name: FaultProxy(port) for name, (port, _) in servers.items()}
    for proxy in proxies.values():
        proxy.set(BLACKHOLE)
    try:
        closed_port = free_port()
        # a few at a time: the calls wait, but each process's start-up works (2 cores here)
        with ThreadPoolExecutor(max_workers=6) as pool:
            closed = [pool.submit(probe, c, closed_port, args.extra, limit=limit) for c in cases]
            holes = [pool.submit(probe, c, proxies[c.server].port, args.extra, limit=limit) for c in cases]
            rows = [_row(c, a.result(), b.result()) for c, a, b in zip(cases, closed, holes, strict=True)]
    finally:
        for proxy in proxies.values():
            proxy.close()
        for _, stop in servers.values():
            stop()
    source = args.src or "this checkout"
    options = args.extra or "defaults"
    print(f"\none call with the server gone ({source}, {options}; 'hung': still running at {limit:.0f} s)")
    print("seconds of the first call (a cold start: client built), then the same call again")
    print(f"{'provider':<22} {'closed port':<30} {'blackhole':<30} {'blackhole again / default deadline'}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
