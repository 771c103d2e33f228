"""The Momento cache under the conformance suites, against a FAKE Momento gRPC server.

No Momento server can run here: tests/providers/momento/fake_momento.py answers the real
SDK in this process (started on first use, one per test process). The suite then proves
that the provider drives the SDK correctly over the wire; Momento's own semantics
(eviction, TTL precision, limits) are only as faithful as the fake.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..providers import Case

_fake: Any = None
_lock = threading.Lock()


def _momento(tmp: Path, name: str) -> str:
    global _fake
    with _lock:
        if _fake is None:
            from providers.momento.fake_momento import start_fake_momento

            _fake = start_fake_momento()
    return f"momento://{name}?local=127.0.0.1:{_fake.port}"


CASES: list[Case] = [
    Case("cache", "momento", _momento, title="MomentoFake"),
]
