"""The users example's welcome while its bucket is down, run by ``test_deferred.py`` in a
process of its own (the moto server's address comes in the environment): the bucket is on
S3 behind the chaos tests' TCP proxy, refused, then passed again. Prints what it saw."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import tempfile
import uuid
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

import httpx  # noqa: E402

from chaos.proxy import PASS, REFUSE, FaultProxy  # noqa: E402
from overcast.providers.local.devserver import DevWorkers  # noqa: E402
from overcast.runtime.dispatch import Delivery  # noqa: E402


def main() -> None:
    moto_port = int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    proxy = FaultProxy(moto_port)
    folder = Path(tempfile.mkdtemp())
    bucket = f"welcome-{uuid.uuid4().hex[:8]}"
    (folder / "overcast.toml").write_text(
        f'[targets.local]\nbucket.welcome = "s3://{bucket}?endpoint=http://127.0.0.1:{proxy.port}"\n'
    )
    spec = importlib.util.spec_from_file_location("users_example", TESTS.parent / "examples" / "users" / "app.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.app.use_config(folder / "overcast.toml")
    try:
        asyncio.run(outage(example, proxy))
    finally:
        proxy.close()


async def outage(example: object, proxy: FaultProxy) -> None:
    app, welcome = example.app, example.welcome  # type: ignore[attr-defined]
    await welcome.create()
    deliveries: list[Delivery] = []
    async with DevWorkers(app, on_delivery=deliveries.append, wait=0.2):
        proxy.set(REFUSE)
        transport = httpx.ASGITransport(app=app.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://users") as client:
            user = {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}
            print("signup", (await client.post("/users", json=user)).status_code)
        await until(lambda: bool(deliveries))
        print("outcomes", ",".join(d.outcome for d in deliveries))
        proxy.set(PASS)
        await until(lambda: welcome.sync.head("welcome/ada.txt") is not None)
    print("welcome", (await welcome.get("welcome/ada.txt")).decode().strip())


async def until(check: object, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    main()
