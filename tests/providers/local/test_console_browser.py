"""The console in a real browser: Debian's Chromium driven by Playwright (``executable_path``;
Playwright's own browser download is never used) against a real ``overcast dev`` process.

Chromium missing is a failure, not a skip (``scripts/test`` installs it). Each test saves
screenshots of the views it visits in ``$OVERCAST_SCREENSHOTS`` (default: a temporary folder).
The short form, for CI (``CI=true`` and no ``OVERCAST_SCREENSHOTS``), runs the same steps and
checks but takes no screenshots.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_support import eventually, free_port, overcast_process, start_redis_at, write_demo, write_outage

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "users"
CHROMIUM = os.environ.get("OVERCAST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (scripts/test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = write_demo(tmp_path_factory.mktemp("console-browser") / "demo")
    with overcast_process(folder, "dev", "--no-reload") as (base, _):
        yield base


class Shots:
    """Where screenshots go: ``shots.take(page, "name")`` saves ``name.png`` there, except in the
    short form (CI without ``OVERCAST_SCREENSHOTS``), where it does nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def take(self, page: Any, name: str) -> None:
        if self.folder is not None:
            page.screenshot(path=self.folder / f"{name}.png")


def short_form() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true") and not os.environ.get("OVERCAST_SCREENSHOTS")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    if short_form():
        return Shots(None)
    folder = Path(os.environ.get("OVERCAST_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return Shots(folder)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()


def test_a_user_created_through_the_api_appears_in_the_feed_and_the_data(page: Any, server: str, shots: Shots) -> None:
    page.goto(f"{server}/_overcast/events")
    page.wait_for_selector("#feed-state.live")
    httpx.post(f"{server}/users", json={"id": "ada", "name": "Ada Lovelace"}).raise_for_status()
    row = page.locator("#events tbody tr.http", has_text="POST /users").first
    row.wait_for()
    assert "201" in row.inner_text() and "sqlite put users" in row.inner_text()
    page.locator("#events tbody tr.delivery", has_text="signups/welcome").first.wait_for()
    shots.take(page, "events")

    page.goto(f"{server}/_overcast/")
    assert page.locator("#resources tr[data-name='users'] .health").inner_text() == "ok"
    shots.take(page, "resources")
    page.click("text=users")
    page.wait_for_selector("#items a[href$='key=ada']")
    shots.take(page, "kv-list")
    page.click("#items >> text=ada")
    assert '"Ada Lovelace"' in page.input_value("#value")
    shots.take(page, "kv-item")


def test_the_example_app_in_the_console(browser: Any, tmp_path: Path, shots: Shots) -> None:
    """examples/users under ``overcast dev``: a user created through its API shows in the feed,
    in the users store, and (by its subscriber) as a welcome object in the bucket."""
    folder = tmp_path / "users"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        with overcast_process(folder, "dev", "--no-reload") as (base, _):
            page.goto(f"{base}/_overcast/events")
            page.wait_for_selector("#feed-state.live")
            user = {"id": "ada", "name": "Ada", "email": "ada@example.com"}
            httpx.post(f"{base}/users", json=user).raise_for_status()
            page.locator("#events tbody tr.http", has_text="POST /users").first.wait_for()
            page.locator("#events tbody tr.delivery", has_text="signups/send_welcome").first.wait_for()
            shots.take(page, "example-events")
            page.goto(f"{base}/_overcast/kv/users")
            page.click("#items >> text=ada")
            assert '"ada@example.com"' in page.input_value("#value")
            page.goto(f"{base}/_overcast/bucket/welcome?prefix=welcome/")
            assert page.locator("#objects >> text=welcome/ada.txt").count() == 1
            shots.take(page, "example-bucket")
    finally:
        context.close()


def test_open_a_delivery_from_the_feed_and_replay_it(page: Any, server: str, shots: Shots) -> None:
    page.goto(f"{server}/_overcast/events")
    page.wait_for_selector("#feed-state.live")
    welcomes = page.locator("#events tbody tr.delivery", has_text="signups/welcome")
    before = welcomes.count()
    httpx.post(f"{server}/users", json={"id": "lin", "name": "Lin"}).raise_for_status()
    eventually(lambda: welcomes.count() == before + 1)
    welcomes.first.locator("a").click()  # the newest is on top
    assert '"id": "lin"' in page.inner_text("#cloudevent")
    assert '"subscription": "welcome"' in page.inner_text("#cloudevent")
    shots.take(page, "event")
    page.click("#replay")
    page.wait_for_selector("#replayed")
    page.goto(f"{server}/_overcast/events")
    eventually(lambda: welcomes.count() == before + 2)


def test_an_edit_saves_and_a_change_underneath_is_a_conflict(page: Any, server: str, shots: Shots) -> None:
    httpx.post(f"{server}/users", json={"id": "grace", "name": "Grace"}).raise_for_status()
    page.goto(f"{server}/_overcast/kv/users/item?key=grace")
    page.fill("#value", '{"id": "grace", "name": "Grace Hopper"}')
    page.click("#save")
    page.wait_for_selector("#saved")
    assert "Grace Hopper" in page.input_value("#value")

    page.fill("#value", '{"id": "grace", "name": "my edit"}')
    httpx.put(f"{server}/users/grace", json={"id": "grace", "name": "changed underneath"}).raise_for_status()
    page.click("#save")
    conflict = page.locator("#conflict")
    conflict.wait_for()
    assert "changed underneath" in page.inner_text("#current")
    assert "my edit" in page.input_value("#value")  # the edit is kept, not lost
    shots.take(page, "kv-conflict")
    stored = httpx.get(f"{server}/_overcast/kv/users/item", params={"key": "grace"}).text
    assert "changed underneath" in stored and "my edit" not in stored


def test_run_a_schedule_from_its_button(page: Any, server: str, shots: Shots) -> None:
    page.goto(f"{server}/_overcast/schedules")
    row = page.locator("#schedules tr[data-name='nightly']")
    assert "rate(1 day)" in row.inner_text()
    row.locator("text=Run now").click()
    page.wait_for_selector("#ran")
    assert page.locator("#schedules tr[data-name='nightly'] .outcome.ok").inner_text() == "ok"
    shots.take(page, "schedules")
    item = httpx.get(f"{server}/_overcast/kv/switches/item", params={"key": "nightly-ran"}).text
    assert "No item at this key" not in item


def test_latency_per_upstream_operation(page: Any, server: str, shots: Shots) -> None:
    for n in range(3):
        httpx.post(f"{server}/users", json={"id": f"latency-{n}", "name": "L"}).raise_for_status()
    page.goto(f"{server}/_overcast/latency")
    row = page.locator("#latency tr[data-key='sqlite put users']")
    assert int(row.locator(".count").inner_text()) >= 3
    assert row.locator("svg polyline").count() == 1
    shots.take(page, "latency")


def _dead_letters(page: Any, server: str) -> str:
    page.goto(f"{server}/_overcast/queues")
    text: str = page.inner_text("#queues tr[data-source='queue:jobs'] .dead")
    return text


def test_re_drive_a_dead_letter_from_its_button(page: Any, server: str, shots: Shots) -> None:
    httpx.post(f"{server}/jobs", json={"job": "browser"}).raise_for_status()
    eventually(lambda: _dead_letters(page, server) == "1", timeout=15, interval=0.3)
    shots.take(page, "queues")
    for _ in range(2):  # peeking receives nothing: the dead letter stays where it is
        page.goto(f"{server}/_overcast/queues")
        page.click("#queues tr[data-source='queue:jobs'] >> text=peek dead letters")
        assert '"browser"' in page.inner_text("#peeked")
    shots.take(page, "peek")
    assert _dead_letters(page, server) == "1"
    page.goto(f"{server}/_overcast/kv/switches/item?key=healed")
    page.fill("#value", '{"by": "browser test"}')
    page.click("#save")
    page.wait_for_selector("#saved")
    page.goto(f"{server}/_overcast/queues")
    page.click("#queues tr[data-source='queue:jobs'] >> text=Re-drive dead letters")
    assert "1 from queue:jobs" in page.inner_text("#moved")
    worked = f"{server}/_overcast/kv/switches/item"
    eventually(lambda: "No item" not in httpx.get(worked, params={"key": "worked-browser"}).text, timeout=15)
    assert _dead_letters(page, server) == "0"


def test_upload_then_download_an_object(page: Any, server: str, shots: Shots, tmp_path: Path) -> None:
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello from the browser\n")
    page.goto(f"{server}/_overcast/bucket/files")
    page.fill("#upload-key", "notes/hello.txt")
    page.set_input_files("#upload-file", str(source))
    page.click("#upload >> text=Upload")
    link = page.locator("#objects >> text=notes/hello.txt")
    link.wait_for()
    shots.take(page, "bucket")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "downloaded.txt"
    download.value.save_as(saved)
    assert saved.read_bytes() == source.read_bytes()


EVIL_PAGE = """<!doctype html><title>a page on another site</title>
<form id="attack" method="post" action="{console}/_overcast/kv/users/item">
<input name="key" value="planted"><input name="version" value=""><input name="value" value="{{}}">
<input name="token" value="guessed"></form>"""


def test_a_foreign_origin_is_refused(page: Any, server: str, shots: Shots) -> None:
    page.route(
        "http://evil.example/**",
        lambda route: route.fulfill(content_type="text/html", body=EVIL_PAGE.format(console=server)),
    )
    page.goto("http://evil.example/")
    with page.expect_navigation():
        page.evaluate("document.getElementById('attack').submit()")
    body = page.inner_text("body")
    assert "403 Forbidden" in body and "evil.example" in body
    shots.take(page, "refused")
    planted = httpx.get(f"{server}/_overcast/kv/users/item", params={"key": "planted"}).text
    assert "No item at this key" in planted


def test_the_secrets_view_shows_names_only(page: Any, server: str, shots: Shots) -> None:
    from console_support import SECRET_VALUE

    page.goto(f"{server}/_overcast/secrets")
    assert "api-token" in page.inner_text("main") and SECRET_VALUE not in page.content()
    shots.take(page, "secrets")


def _member_state(page: Any, server: str, role: str) -> dict[str, str]:
    page.goto(f"{server}/_overcast/resources")
    row = page.locator(f"#replicated-ledger tr[data-role='{role}']")
    return {name: row.locator(f".{name}").inner_text() for name in ("breaker", "reachable", "log-depth")}


def _backlog_state(page: Any, server: str) -> dict[str, str]:
    page.goto(f"{server}/_overcast/backlog")
    row = page.locator("#backlogs tr[data-backlog='mails']")
    return {name: row.locator(f".{name}").inner_text() for name in ("depth", "in-hand", "oldest", "dead")}


def _backlog_total(page: Any, server: str) -> int:
    state = _backlog_state(page, server)
    return int(state["depth"]) + int(state["in-hand"])


def test_a_member_down_and_the_backlog_re_driven(page: Any, shots: Shots, tmp_path: Path) -> None:
    """A real Redis server behind the replicated ``ledger`` and the non-critical mail's ``outbox``
    goes down under ``overcast dev``, then comes back: the replica's breaker, the change log and
    the backlog show it, and the backlog's dead letters are re-driven from their button."""
    port = free_port()
    redis = start_redis_at(port)
    with overcast_process(write_outage(tmp_path / "outage", port), "dev", "--no-reload") as (base, _):
        assert _member_state(page, base, "replica 1")["breaker"] == "closed"
        redis.stop()  # type: ignore[attr-defined]
        for n in range(3):
            httpx.post(f"{base}/ledger", json={"id": f"entry-{n}"}).raise_for_status()
        httpx.post(f"{base}/mails", json={"to": "ada"}).raise_for_status()
        eventually(lambda: _member_state(page, base, "replica 1")["breaker"] in ("open", "half-open"), interval=0.3)
        assert _member_state(page, base, "replica 1")["reachable"].startswith("no:")
        assert int(_member_state(page, base, "primary")["log-depth"]) >= 3
        shots.take(page, "resources-member-down")

        eventually(lambda: _backlog_total(page, base) == 1, timeout=15, interval=0.3)  # waiting or in replay
        # in the replayer's hand before bob comes, so bob waits in the backlog (not taken with it in one batch)
        eventually(lambda: _backlog_state(page, base)["in-hand"] == "1", timeout=15, interval=0.3)
        httpx.post(f"{base}/mails", json={"to": "bob"}).raise_for_status()
        eventually(lambda: _backlog_total(page, base) == 2 and _backlog_state(page, base)["depth"] != "0", interval=0.3)
        assert "bob" in page.inner_text("table.items[data-backlog='mails']")
        shots.take(page, "backlog")

        redis = start_redis_at(port)
        eventually(lambda: _member_state(page, base, "replica 1")["breaker"] == "closed", timeout=20, interval=0.3)
        eventually(lambda: _member_state(page, base, "primary")["log-depth"] == "0", timeout=20, interval=0.3)
        eventually(lambda: _backlog_state(page, base)["dead"] == "2", timeout=30, interval=0.3)
        dead = page.inner_text("table.dead-items[data-backlog='mails']")
        assert "ada" in dead and "bob" in dead
        shots.take(page, "backlog-dead-letters")

        page.goto(f"{base}/_overcast/kv/switches/item?key=mail-fixed")
        page.click("#save")
        page.wait_for_selector("#saved")
        page.goto(f"{base}/_overcast/backlog")
        page.click("#backlogs tr[data-backlog='mails'] >> text=Re-drive dead letters")
        assert "2 from mails" in page.inner_text("#moved")
        outbox = f"{base}/_overcast/kv/outbox/item"
        for to in ("ada", "bob"):
            eventually(lambda to=to: "No item" not in httpx.get(outbox, params={"key": to}).text, timeout=20)  # type: ignore[misc]
        assert _backlog_state(page, base)["dead"] == "0"
    redis.stop()  # type: ignore[attr-defined]
