"""The example in examples/users, driven in-process on embedded providers in a tmp folder."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import uuid
from pathlib import Path
from types import ModuleType

import anyio
import httpx
import pytest

from overcast.runtime.dispatch import deliver

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "users"


def load_example(tmp_path: Path) -> ModuleType:
    """Import a fresh copy of the example, configured from a copy of its overcast.toml in ``tmp_path``."""
    shutil.copy(EXAMPLE / "overcast.toml", tmp_path / "overcast.toml")
    name = f"users_example_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module.app.use_config(tmp_path / "overcast.toml")
    return module


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    monkeypatch.delenv("OVERCAST_CONFIG", raising=False)
    return load_example(tmp_path)


def client(module: ModuleType) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=module.app.asgi), base_url="http://test")


ADA = {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}


def test_data_lands_in_the_toml_folder(example: ModuleType, tmp_path: Path) -> None:
    assert example.app.url_for("kv", "users").local_path() == tmp_path / ".overcast" / "kv" / "users.db"


def test_other_targets_resolve(example: ModuleType) -> None:
    config = example.app.config
    assert config.url_for("kv", "users", app="users-demo", target="aws").scheme == "dynamodb"
    assert config.url_for("kv", "users", app="users-demo", target="gcp").scheme == "firestore"
    assert config.url_for("bucket", "welcome", app="users-demo", target="azure").scheme == "azblob"


def test_create_conflict_invalid_read_and_missing(example: ModuleType) -> None:
    async def main() -> None:
        await example.app.provision()
        async with client(example) as http:
            created = await http.post("/users", json=ADA)
            assert created.status_code == 201, created.text
            assert created.json() == ADA

            again = await http.post("/users", json={**ADA, "name": "Someone else"})
            assert again.status_code == 409
            assert "ada" in again.text

            for bad in ({"id": "bob"}, {"id": "bob", "name": "Bob", "email": "not-an-email"}, [1, 2]):
                response = await http.post("/users", json=bad)
                assert response.status_code == 422, bad
            assert await example.users.get("bob") is None

            empty = await http.post("/users", json={**ADA, "id": ""})  # the store refuses the key
            assert empty.status_code == 422, empty.text
            assert empty.headers["content-type"] == "application/problem+json"
            assert empty.json()["detail"] == "users: key must not be empty"
            assert empty.json()["resource"] == "users"

            found = await http.get("/users/ada")
            assert found.status_code == 200
            assert found.json() == ADA
            assert (await http.get("/users/nobody")).status_code == 404

        stored = await example.users.get("ada")
        assert stored is not None and stored.value == ADA

    anyio.run(main)


def test_reads_come_from_the_cache(example: ModuleType) -> None:
    async def main() -> None:
        await example.app.provision()
        async with client(example) as http:
            assert (await http.post("/users", json=ADA)).status_code == 201
            assert await example.users_cache.get("ada") == ADA
            # Written behind the API's back: the cached copy still answers.
            await example.users.put("ada", {**ADA, "name": "Changed"})
            assert (await http.get("/users/ada")).json()["name"] == "Ada Lovelace"
            # Once evicted, the read goes to the store and fills the cache again.
            await example.users_cache.delete("ada")
            assert (await http.get("/users/ada")).json()["name"] == "Changed"
            assert (await example.users_cache.get("ada"))["name"] == "Changed"

    anyio.run(main)


def test_signup_event_reaches_the_welcome_bucket(example: ModuleType, tmp_path: Path) -> None:
    async def main() -> None:
        await example.app.provision()
        (subscription,) = [s for s in example.app.subscriptions if s.name == "send_welcome"]
        assert subscription.critical is False
        queue = example.signups.subscription("send_welcome")
        async with client(example) as http:
            assert (await http.post("/users", json=ADA)).status_code == 201
        messages = await queue.receive(max_messages=10, wait=5)
        assert len(messages) == 1
        assert messages[0].body["id"] == "ada"
        outcome = await deliver(subscription, queue, messages[0], app=example.app.name)
        assert outcome.outcome == "ok", outcome.error
        info = await example.welcome.head("welcome/ada.txt")
        assert info is not None and info.content_type == "text/plain"
        text = (await example.welcome.get("welcome/ada.txt")).decode()
        assert "Ada Lovelace" in text
        assert await queue.receive(wait=0) == []
        # What the README's `ls` and `cat` show: the message as a plain file
        on_disk = tmp_path / ".overcast" / "buckets" / "welcome" / "welcome" / "ada.txt"
        assert on_disk.read_text() == text
        assert "cat .overcast/buckets/welcome/welcome/ada.txt" in (EXAMPLE / "README.md").read_text()

    anyio.run(main)


def test_hourly_count(example: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    from overcast.runtime.dispatch import run_schedule

    async def main() -> None:
        await example.app.provision()
        await example.users.put("a", {"id": "a"})
        await example.users.put("b", {"id": "b"})
        jobs = {j.name: j for j in example.app.schedules}
        assert set(jobs) == {"count_users", "overcast-replay"}  # the welcome's backlog is replayed by the latter
        job = jobs["count_users"]
        assert job.schedule.expression == "rate(1 hour)"
        with caplog.at_level("INFO", logger="users-demo"):
            result = await run_schedule(job, app=example.app.name)
        assert result.outcome == "ok", result.error
        assert "users.count=2" in caplog.text

    anyio.run(main)
