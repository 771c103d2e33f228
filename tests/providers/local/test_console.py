"""The console of ``overcast dev``, over HTTP against a real ``overcast dev`` process on the
embedded providers (SQLite, files, env secrets): every view, editing on version, the
event feed, and the guard that keeps it local. The browser tests are in test_console_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_support import (
    SECRET_VALUE,
    eventually,
    overcast_process,
    start_overcast,
    stop,
    token_of,
    write_demo,
)

import overcast
from overcast.errors import NotSupported
from overcast.providers.local.console.guard import is_loopback_host, refusal


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    """One ``overcast dev`` for the module; each test uses keys of its own."""
    folder = write_demo(tmp_path_factory.mktemp("console") / "demo")
    with (
        overcast_process(folder, "dev", "--no-reload") as (base, log),
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        yield client, log


def _console(client: httpx.Client) -> str:
    """Open the console (which sets the session cookie) and return the page's token."""
    return token_of(client.get("/_overcast/").text)


def test_the_health_endpoint_is_the_apps_beside_the_console(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    reply = client.get("/_overcast/health")
    assert reply.status_code == 200 and reply.json()["status"] == "ok"


def test_the_banner_prints_the_console_url(dev: tuple[httpx.Client, Path]) -> None:
    client, log = dev
    assert f"console {client.base_url}/_overcast/" in log.read_text()


def test_resources_show_kind_provider_url_and_health_but_no_secret_value(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    page = client.get("/_overcast/resources")
    assert page.status_code == 200
    table = re.search(r'<table id="resources">(.*?)</table>', page.text, re.S).group(1)  # type: ignore[union-attr]
    rows = dict(re.findall(r'<tr data-name="([^"]+)">(.*?)</tr>', table, re.S))
    assert set(rows) == {"users", "switches", "files", "jobs", "signups", "api-token"}
    assert "sqlite:///.overcast/kv/users.db" in rows["users"] and ">sqlite<" in rows["users"]
    assert ">file<" in rows["files"] and ">env<" in rows["api-token"]
    assert all('class="health ok"' in row for row in rows.values()), page.text
    targets = re.search(r'<table id="targets">(.*?)</table>', page.text, re.S)
    assert targets and "<th>aws</th>" in targets.group(1) and "dynamodb://demo-users" in targets.group(1)
    for path in ("/_overcast/resources", "/_overcast/secrets"):
        text = client.get(path).text
        assert "api-token" in text and SECRET_VALUE not in text


def test_a_missing_secret_is_unhealthy_not_hidden(tmp_path: Path) -> None:
    from overcast.providers.local.console.pages import _health

    class Down:
        async def ping(self) -> None:
            raise ConnectionError("refused")

    import asyncio

    assert asyncio.run(_health(Down())) == (False, "ConnectionError: refused")


def test_kv_browse_by_prefix_with_pagination(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    for n in range(60):
        client.post("/users", json={"id": f"page-{n:03d}", "name": f"user {n}"}).raise_for_status()
    first = client.get("/_overcast/kv/users", params={"prefix": "page-"})
    keys = re.findall(r"item\?key=(page-\d+)", first.text)
    assert len(keys) == 50
    more = re.search(r'href="([^"]+)" id="next-page"', first.text)
    assert more, first.text
    second = client.get(more.group(1).replace("&amp;", "&"))
    rest = re.findall(r"item\?key=(page-\d+)", second.text)
    assert sorted(keys + rest) == [f"page-{n:03d}" for n in range(60)]
    assert 'id="next-page"' not in second.text
    none = client.get("/_overcast/kv/users", params={"prefix": "nobody-"})
    assert "No items whose key starts with" in none.text


def test_edit_on_version_and_a_concurrent_change_is_a_conflict(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    client.post("/users", json={"id": "edit-1", "name": "Ada"}).raise_for_status()
    page = client.get("/_overcast/kv/users/item", params={"key": "edit-1"})
    version = re.search(r'name="version" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    edited = {
        "token": token,
        "key": "edit-1",
        "version": version,
        "value": json.dumps({"id": "edit-1", "name": "Ada L."}),
    }
    saved = client.post("/_overcast/kv/users/item", data=edited)
    assert saved.status_code == 303 and "saved=1" in saved.headers["location"]
    client.put("/users/edit-1", json={"id": "edit-1", "name": "changed underneath"}).raise_for_status()
    stale = client.post("/_overcast/kv/users/item", data={**edited, "value": json.dumps({"name": "mine"})})
    assert stale.status_code == 409
    assert 'id="conflict"' in stale.text and "changed underneath" in stale.text
    item = client.get("/_overcast/kv/users/item", params={"key": "edit-1"}).text
    assert "changed underneath" in item and "mine" not in item  # nothing was overwritten


def test_new_item_and_bad_json_and_delete_on_version(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    form = {"token": token, "key": "new-1", "version": "", "value": '{"a": 1}'}
    assert client.post("/_overcast/kv/users/item", data=form).status_code == 303
    assert client.post("/_overcast/kv/users/item", data=form).status_code == 409  # created meanwhile: no overwrite
    bad = client.post("/_overcast/kv/users/item", data={**form, "key": "new-2", "value": "{oops"})
    assert bad.status_code == 400 and "users/new-2: the value is not JSON" in bad.text
    listed = client.post("/_overcast/kv/users/item", data={**form, "key": "new-2", "value": "[1]"})
    assert listed.status_code == 400 and "must be a JSON object" in listed.text
    page = client.get("/_overcast/kv/users/item", params={"key": "new-1"}).text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.put("/users/new-1", json={"a": 2}).raise_for_status()
    gone = {"token": token, "key": "new-1", "version": version}
    assert client.post("/_overcast/kv/users/delete", data=gone).status_code == 409
    page = client.get("/_overcast/kv/users/item", params={"key": "new-1"}).text
    fresh = re.search(r'name="version" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/_overcast/kv/users/delete", data={**gone, "version": fresh}).status_code == 303
    assert "No item at this key" in client.get("/_overcast/kv/users/item", params={"key": "new-1"}).text


def test_everything_shown_is_escaped(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    evil = "<script>alert(1)</script>"
    client.post("/users", json={"id": "xss-<b>1</b>", "name": evil}).raise_for_status()
    for page in (
        client.get("/_overcast/kv/users", params={"prefix": "xss-"}),
        client.get("/_overcast/kv/users/item", params={"key": "xss-<b>1</b>"}),
    ):
        assert "<script>alert" not in page.text and "<b>1</b>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text or "&#34;&lt;script&gt;" in page.text
    missing = client.get(f"/_overcast/kv/{evil}")
    assert missing.status_code == 404 and "<script>" not in missing.text


def test_state_changes_need_the_session_token(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    form = {"key": "csrf-1", "version": "", "value": "{}"}
    assert client.post("/_overcast/kv/users/item", data=form).status_code == 403
    assert client.post("/_overcast/kv/users/item", data={**form, "token": "guessed"}).status_code == 403
    with httpx.Client(base_url=client.base_url) as stranger:  # the token without its cookie
        assert stranger.post("/_overcast/kv/users/item", data={**form, "token": token}).status_code == 403
    assert client.put("/_overcast/bucket/files/object", params={"key": "x"}, content=b"x").status_code == 403
    assert client.post("/_overcast/schedules/nightly/run", data={}).status_code == 403
    assert "No item at this key" in client.get("/_overcast/kv/users/item", params={"key": "csrf-1"}).text


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example:8000"},
        {"host": "127.0.0.1.nip.io"},
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_foreign_host_or_origin_is_refused(dev: tuple[httpx.Client, Path], headers: dict[str, str]) -> None:
    client, _ = dev
    token = _console(client)
    assert client.get("/_overcast/resources", headers=headers).status_code == 403
    refused = client.post("/_overcast/schedules/nightly/run", data={"token": token}, headers=headers)
    assert refused.status_code == 403 and "403 Forbidden" in refused.text
    assert client.get("/_overcast/resources", headers={"origin": str(client.base_url)}).status_code == 200


def test_the_guard_knows_loopback_from_the_rest() -> None:
    assert all(is_loopback_host(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "[::1]", "::1", "app.localhost"))
    assert not any(is_loopback_host(h) for h in ("", "example.com", "10.0.0.1", "0.0.0.0", "localhost.evil.com"))
    scope = {"type": "http", "client": ("192.168.1.5", 5000), "headers": [(b"host", b"127.0.0.1:8000")]}
    assert "this machine only" in (refusal(scope) or "")


def test_objects_upload_list_download_delete(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    body = b"<html><script>alert(1)</script></html>"
    up = client.put(
        "/_overcast/bucket/files/object",
        params={"key": "docs/page.html"},
        content=body,
        headers={"x-overcast-token": token, "content-type": "text/html"},
    )
    assert up.status_code == 201 and up.json() == {"key": "docs/page.html", "size": len(body)}
    listing = client.get("/_overcast/bucket/files", params={"prefix": "docs/"}).text
    assert "docs/page.html" in listing and str(len(body)) in listing
    down = client.get("/_overcast/bucket/files/object", params={"key": "docs/page.html"})
    assert down.content == body
    assert down.headers["content-type"] == "application/octet-stream"  # never rendered on the console's origin
    assert down.headers["content-disposition"].startswith("attachment")
    assert (
        client.post("/_overcast/bucket/files/delete", data={"token": token, "key": "docs/page.html"}).status_code == 303
    )
    assert client.get("/_overcast/bucket/files/object", params={"key": "docs/page.html"}).status_code == 404


def _feed(client: httpx.Client, after: int = 0, *, until: str) -> list[dict[str, object]]:
    """Read the console's server-sent events from ``after`` until one's data contains ``until``."""
    events: list[dict[str, object]] = []
    with client.stream("GET", "/_overcast/events/stream", headers={"last-event-id": str(after)}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if until in line:
                    return events
    raise AssertionError(f"the feed ended without {until!r}: {events}")


def test_the_event_feed_streams_requests_and_deliveries(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    last = int(re.search(r'data-last-id="(\d+)"', client.get("/_overcast/events").text).group(1))  # type: ignore[union-attr]
    client.post("/users", json={"id": "feed-1", "name": "Feed"}).raise_for_status()
    events = _feed(client, after=last, until='"handler": "welcome"')
    assert all(int(e["id"]) > last for e in events)  # type: ignore[call-overload]
    request = next(e for e in events if e["title"] == "POST /users" and e["type"] == "http")
    assert request["status"] == 201 and request["outcome"] == "ok" and float(request["ms"]) > 0  # type: ignore[arg-type]
    assert any(c["operation"] == "put" and c["resource"] == "users" for c in request["calls"])  # type: ignore[attr-defined]
    delivery = next(e for e in events if e["type"] == "delivery" and e["handler"] == "welcome")
    assert delivery["outcome"] == "ok" and delivery["attempt"] == 1
    later = _feed(client, after=int(request["id"]), until='"handler": "welcome"')  # type: ignore[call-overload]
    assert all(int(e["id"]) > int(request["id"]) for e in later)  # type: ignore[call-overload]
    assert "POST /users" in client.get("/_overcast/events").text
    bad = client.get("/_overcast/events/stream", headers={"last-event-id": "<x>"})
    assert bad.status_code == 400 and "Last-Event-ID must be an event id" in bad.text


def test_schedules_show_next_run_and_run_now(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    before = client.get("/_overcast/schedules").text
    assert "rate(1 day)" in before and "UTC" in before and "not since this server started" in before
    ran = client.post("/_overcast/schedules/nightly/run", data={"token": token})
    assert ran.status_code == 303
    after = client.get("/_overcast/schedules").text
    assert 'class="outcome ok"' in after
    assert "ran" in client.get("/_overcast/kv/switches/item", params={"key": "nightly-ran"}).text
    missing = client.post("/_overcast/schedules/nobody/run", data={"token": token})
    assert missing.status_code == 404 and "no schedule &#39;nobody&#39;" in missing.text


def _queue_row(client: httpx.Client, source: str) -> tuple[str, str]:
    page = client.get("/_overcast/queues").text
    row = re.search(rf'<tr data-source="{re.escape(source)}">(.*?)</tr>', page, re.S)
    assert row, page
    depth = re.search(r'class="depth">([^<]*)<', row.group(1)).group(1)  # type: ignore[union-attr]
    dead = re.search(r'class="dead">([^<]*)<', row.group(1)).group(1)  # type: ignore[union-attr]
    return depth, dead


def test_dead_letters_are_counted_and_re_driven(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    client.post("/jobs", json={"job": "j1"}).raise_for_status()
    eventually(lambda: _queue_row(client, "queue:jobs")[1] == "1")
    assert _queue_row(client, "subscription:signups/welcome")[0].isdigit()
    for _ in range(2):  # peeking twice receives nothing: the dead letter stays, its attempts unchanged
        peeked = client.get("/_overcast/queues/peek", params={"source": "queue:jobs", "dead": "1"})
        assert peeked.status_code == 200 and "&#34;j1&#34;" in _table(peeked.text, "peeked")
    assert _queue_row(client, "queue:jobs")[1] == "1"
    assert "No message waiting" in client.get("/_overcast/queues/peek", params={"source": "queue:jobs"}).text
    assert client.get("/_overcast/queues/peek", params={"source": "queue:nope"}).status_code == 404
    healed = {"token": token, "key": "healed", "version": "", "value": "{}"}
    assert client.post("/_overcast/kv/switches/item", data=healed).status_code == 303
    moved = client.post("/_overcast/queues/redrive", data={"token": token, "source": "queue:jobs"})
    assert moved.status_code == 303 and "moved=1" in moved.headers["location"]
    eventually(lambda: "ok" in client.get("/_overcast/kv/switches/item", params={"key": "worked-j1"}).text)
    assert _queue_row(client, "queue:jobs")[1] == "0"


def test_an_app_without_deferred_work_has_an_empty_backlog_page(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    page = client.get("/_overcast/backlog")
    assert page.status_code == 200 and "This app has no backlog" in page.text
    refused = client.post("/_overcast/backlog/redrive", data={"token": _console(client), "backlog": "nope"})
    assert refused.status_code == 404 and "has no backlog &#39;nope&#39;" in refused.text


def test_peek_says_so_where_the_provider_cannot() -> None:
    from overcast.providers.local.console.queues import _not_supported

    sqs = overcast.open_queue("sqs://demo-jobs?region=us-east-1&endpoint=http://127.0.0.1:1")
    with pytest.raises(NotSupported):  # before any call: SQS has no peek, only a receive that hides
        sqs.sync.peek()
    assert "not supported by sqs" in _not_supported(sqs)


def test_publish_to_a_topic_from_the_form(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    sent = client.post("/_overcast/topic/signups/publish", data={"token": token, "body": '{"id": "from-form"}'})
    assert sent.status_code == 303 and "published=" in sent.headers["location"]
    eventually(
        lambda: "from-form" in client.get("/_overcast/kv/switches/item", params={"key": "welcomed-from-form"}).text
    )
    bad = client.post("/_overcast/topic/signups/publish", data={"token": token, "body": "nope"})
    assert bad.status_code == 400 and "not JSON" in bad.text


def test_no_console_flag_and_overcast_run_never_serve_it(tmp_path: Path) -> None:
    folder = write_demo(tmp_path / "demo")
    with overcast_process(folder, "dev", "--no-reload", "--no-console", ready_path="/users") as (base, log):
        assert httpx.get(f"{base}/_overcast/").status_code == 404
        assert "console http" not in log.read_text()
    with overcast_process(folder, "run", "--with-workers", ready_path="/users") as (base, _):
        assert httpx.get(f"{base}/_overcast/").status_code == 404


def test_a_request_is_kept_as_it_came_and_shown_as_an_event_when_read() -> None:
    """The request's path only appends its summary; pages and the feed see the same event
    (and the feed's JSON, written straight from the summary, is json.dumps of it)."""
    from overcast.providers.local.console.events import EventLog, event_of, http_json, sse
    from overcast.telemetry.http import RequestSummary

    log = EventLog()
    calls = [("sqlite", "get", 'us"ers', "ok", 0.0012345), ("memory", "set", "café", "conflict", 0.5)]
    log.request(RequestSummary("POST", "/users/é\\x", 503, 0.25, calls))
    (entry,) = log.entries
    assert entry[2].calls is calls  # nothing copied or built on the request's path
    shown = log.recent()[0]
    assert shown == {
        "type": "http",
        "title": "POST /users/é\\x",
        "status": 503,
        "outcome": "error",
        "ms": 250.0,
        "calls": [
            {"upstream": "sqlite", "operation": "get", "resource": 'us"ers', "outcome": "ok", "ms": 1.23},
            {"upstream": "memory", "operation": "set", "resource": "café", "outcome": "conflict", "ms": 500.0},
        ],
        "id": 1,
        "at": entry[1],
    }
    assert http_json(entry) == json.dumps(event_of(entry))
    assert sse(entry) == f"id: 1\nevent: http\ndata: {json.dumps(shown)}\n\n"
    assert log.find(1) == shown and log.find(2) is None and log.since(0) == [shown] and log.since(1) == []
    for status, outcome in ((200, "ok"), (404, "client-error")):
        log.request(RequestSummary("GET", "/", status, 0.001, []))
        assert log.recent(1)[0]["outcome"] == outcome and json.loads(http_json(log.entries[-1]))["calls"] == []


def test_a_feed_is_woken_once_per_batch_from_any_thread_and_reads_what_is_new() -> None:
    import asyncio
    import threading

    from overcast.providers.local.console.events import EventLog
    from overcast.telemetry.http import RequestSummary

    log = EventLog(keep=5)
    summary = RequestSummary("GET", "/x", 200, 0.001, [])

    async def follow() -> None:
        feed = log.follow()
        assert not feed.ready.is_set()
        log.request(summary)
        assert feed.ready.is_set() and feed.pending
        log.request(summary)  # already woken: nothing more to do until it reads
        chunk, last = log.stream_since(0)
        assert (chunk.count("\ndata: "), last) == (2, 2)
        feed.taken()
        assert not feed.ready.is_set() and not feed.pending
        worker = threading.Thread(target=log.request, args=(summary,))  # a WSGI app's worker thread
        worker.start()
        worker.join()
        await asyncio.wait_for(feed.ready.wait(), 5)
        for _ in range(7):  # more than kept before the feed reads: it skips to the newest
            log.request(summary)
        chunk, last = log.stream_since(last)
        assert [int(line[4:]) for line in chunk.splitlines() if line.startswith("id: ")] == [6, 7, 8, 9, 10]
        assert last == 10 and log.stream_since(10) == ("", 10)
        log.close_feeds()
        assert feed.closed and feed.ready.is_set()
        log.unfollow(feed)
        assert not log.feeds

    asyncio.run(follow())


def test_latency_percentiles_are_nearest_rank_over_the_window() -> None:
    from overcast.providers.local.console.latency import LatencyBook, percentile

    ordered = [float(n) for n in range(1, 101)]
    assert (percentile(ordered, 0.5), percentile(ordered, 0.95), percentile(ordered, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0
    book = LatencyBook(window=60)
    book.add(("sqlite", "get", "users"), 1000.0, 500.0, False)  # outside the window by then
    for n in range(1, 21):
        book.add(("sqlite", "get", "users"), 1100.0 + n, float(n), True)
    (row,) = book.rows(now=1121.0)
    assert (row["count"], row["errors"], row["p50"], row["p95"], row["p99"]) == (20, 0, 10.0, 19.0, 20.0)
    assert row["chart"]["points"] and row["chart"]["top"] == 20.0


def test_the_latency_view_shows_each_upstream_operation(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    for n in range(5):
        client.post("/users", json={"id": f"lat-{n}", "name": "L"}).raise_for_status()
    page = client.get("/_overcast/latency").text
    row = re.search(r'<tr data-key="sqlite put users">(.*?)</tr>', page, re.S)
    assert row, page
    count = int(re.search(r'class="count">(\d+)<', row.group(1)).group(1))  # type: ignore[union-attr]
    assert count >= 5
    p50, p95, p99 = (float(v) for v in re.findall(r'class="p\d\d">([\d.]+) ms', row.group(1)))
    assert 0 < p50 <= p95 <= p99
    assert "<polyline" in row.group(1)
    assert 'class="outside">0<' in row.group(1)  # the request's own calls


def test_latency_counts_calls_outside_requests_but_not_the_consoles_own(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    client.get("/_overcast/resources")  # pings every resource: the console's calls, not the app's
    client.post("/users", json={"id": "outside-1", "name": "O"}).raise_for_status()

    def welcome_put() -> str | None:
        page = client.get("/_overcast/latency").text
        row = re.search(r'<tr data-key="sqlite put switches">(.*?)</tr>', page, re.S)
        return row.group(1) if row else None  # the subscriber's put, made outside any request

    row = eventually(welcome_put)
    outside = int(re.search(r'class="outside">(\d+)<', row).group(1))  # type: ignore[arg-type, union-attr]
    assert outside >= 1
    page = client.get("/_overcast/latency").text
    assert "ping" not in page  # the console's health checks are not the app's calls
    assert 'data-key="sqlite receive' not in page  # nor the consumers' long polls


def _welcome_of(client: httpx.Client, after: int, user: str) -> dict[str, Any]:
    """The first delivery to ``welcome`` after event ``after`` whose message is about ``user``."""
    marker = f'"data": {{"id": "{user}"}}'
    events = _feed(client, after=after, until=marker)
    return next(e for e in events if e["type"] == "delivery" and e["cloudevent"]["data"] == {"id": user})  # type: ignore[index]


def test_a_delivery_shows_its_cloudevent_and_replays_to_its_handler_only(dev: tuple[httpx.Client, Path]) -> None:
    client, _ = dev
    token = _console(client)
    last = int(re.search(r'data-last-id="(\d+)"', client.get("/_overcast/events").text).group(1))  # type: ignore[union-attr]
    client.post("/users", json={"id": "replay-1", "name": "R"}).raise_for_status()
    first = _welcome_of(client, last, "replay-1")
    assert "_message" not in first  # what is kept for replay never leaves the server
    cloudevent = first["cloudevent"]
    assert cloudevent["source"] == "overcast://console-demo/topic/signups"  # type: ignore[index]
    assert cloudevent["subscription"] == "welcome" and cloudevent["attempts"] == 1  # type: ignore[index]
    detail = client.get(f"/_overcast/events/{first['id']}").text
    assert "overcast://console-demo/topic/signups" in detail and 'id="replay"' in detail
    assert client.post(f"/_overcast/events/{first['id']}/replay", data={}).status_code == 403
    again = client.post(f"/_overcast/events/{first['id']}/replay", data={"token": token})
    assert again.status_code == 303 and "replayed=" in again.headers["location"]
    second = _welcome_of(client, int(first["id"]), "replay-1")  # type: ignore[call-overload]
    assert second["outcome"] == "ok" and second["event_id"] != first["event_id"]
    request = next(e for e in _feed(client, after=last, until="POST /users") if e["type"] == "http")
    refused = client.post(f"/_overcast/events/{request['id']}/replay", data={"token": token})
    assert refused.status_code == 400 and "only those can be replayed" in refused.text
    assert client.get("/_overcast/events/999999").status_code == 404


def test_ctrl_c_with_the_feed_open_ends_the_server_cleanly(tmp_path: Path) -> None:
    folder = write_demo(tmp_path / "demo")
    proc, base, log = start_overcast(folder, "dev", "--no-reload")
    with httpx.Client(base_url=base, timeout=30) as client, client.stream("GET", "/_overcast/events/stream") as feed:
        lines = feed.iter_lines()
        assert next(lines).startswith("retry:")
        stop(proc, timeout=20)  # raises if it has not ended by then
        assert list(lines) == [""] or all(not line.startswith("data:") for line in lines)
    text = log.read_text()
    assert "Application shutdown complete" in text
    assert "Traceback" not in text and "graceful shutdown exceeded" not in text


def test_the_reloading_server_serves_the_console_too(tmp_path: Path) -> None:
    """``overcast dev`` with reload (the default) runs the app in a child process: it has the console and its feed."""
    folder = write_demo(tmp_path / "demo")
    with overcast_process(folder, "dev") as (base, log), httpx.Client(base_url=base, timeout=10) as client:
        assert "reloading on changes" in log.read_text()
        client.post("/users", json={"id": "reloaded", "name": "R"}).raise_for_status()
        events = _feed(client, until="POST /users")
        assert any(e["title"] == "POST /users" and e["status"] == 201 for e in events)


def _table(page: str, table_id: str) -> str:
    found = re.search(rf'<table[^>]*id="{re.escape(table_id)}"[^>]*>(.*?)</table>', page, re.S)
    assert found, page
    return found.group(1)


def _cell(row_html: str, name: str) -> str:
    found = re.search(rf'<td class="{name}[^"]*">(.*?)</td>', row_html, re.S)
    assert found, row_html
    return found.group(1).strip()


def _member(client: httpx.Client, role: str) -> str:
    table = _table(client.get("/_overcast/resources").text, "replicated-ledger")
    found = re.search(rf'<tr data-role="{role}">(.*?)</tr>', table, re.S)
    assert found, table
    return found.group(1)


def _backlog(client: httpx.Client) -> str:
    table = _table(client.get("/_overcast/backlog").text, "backlogs")
    found = re.search(r'<tr data-backlog="mails">(.*?)</tr>', table, re.S)
    assert found, table
    return found.group(1)


def _total(row_html: str) -> int:
    """Items of a backlog row waiting or in replay."""
    return int(_cell(row_html, "depth")) + int(_cell(row_html, "in-hand"))


def test_a_member_down_and_a_backlog_through_an_outage(tmp_path: Path) -> None:
    """A real Redis server goes down under ``overcast dev``: the replicated ledger shows its replica's
    breaker open and writes waiting in the log, and the non-critical mail waits in its backlog
    (depth, age, why); once Redis is back both recover, a replay that keeps failing lands in the
    backlog's dead letters, and re-driving them (with the session token) delivers it."""
    from console_support import free_port, start_redis_at, write_outage

    port = free_port()
    redis = start_redis_at(port)
    folder = write_outage(tmp_path / "outage", port)
    with overcast_process(folder, "dev", "--no-reload") as (base, _), httpx.Client(base_url=base, timeout=15) as c:
        assert _cell(_member(c, "replica 1"), "breaker") == "closed"
        assert _cell(_member(c, "replica 1"), "lag") == "—"  # nothing shipped yet
        redis.stop()  # type: ignore[attr-defined]
        for n in range(3):
            c.post("/ledger", json={"id": f"entry-{n}"}).raise_for_status()
        c.post("/mails", json={"to": "ada"}).raise_for_status()
        replica = eventually(lambda: (r := _member(c, "replica 1")) and "open" in _cell(r, "breaker") and r)
        assert "no:" in _cell(replica, "reachable")  # type: ignore[arg-type]
        assert int(_cell(_member(c, "primary"), "log-depth")) >= 3
        assert _cell(_member(c, "primary"), "breaker") == "closed"
        # the replayer, long-polling the backlog while the outbox was up, takes the first mail and holds
        # it while the outbox is down ("in replay"); what comes next waits in the backlog
        eventually(lambda: _total(_backlog(c)) == 1, timeout=15)
        # taken by the replayer (as its half-open probe, if it had not taken it yet) before the next
        # mail comes, so that one waits in the backlog instead of being taken with it in one batch
        eventually(lambda: _cell(_backlog(c), "in-hand") == "1", timeout=15)
        c.post("/mails", json={"to": "bob"}).raise_for_status()
        waiting = eventually(lambda: (r := _backlog(c)) and _total(r) == 2 and _cell(r, "depth") != "0" and r)
        assert _cell(waiting, "oldest").endswith(" s")  # type: ignore[arg-type]
        page = c.get("/_overcast/backlog").text
        items = re.search(r'<table class="items" data-backlog="mails">(.*?)</table>', page, re.S)
        assert items and "breaker open" in items.group(1)  # parked at once: the first had opened it
        assert "&#34;to&#34;: &#34;bob&#34;" in items.group(1) and "ago" in items.group(1)

        redis = start_redis_at(port)
        eventually(lambda: _cell(_member(c, "replica 1"), "breaker") == "closed", timeout=20)
        eventually(lambda: _cell(_member(c, "primary"), "log-depth") == "0", timeout=20)
        assert re.fullmatch(r"[\d.]+ ms \([\d.]+ ms; [3-9] writes\)", _cell(_member(c, "replica 1"), "lag"))
        latency = c.get("/_overcast/latency").text
        shipped = re.search(r'<tr data-key="redis put_if_newer ledger">(.*?)</tr>', latency, re.S)
        assert shipped and int(_cell(shipped.group(1), "outside")) >= 3  # the replicator's calls, timed
        dead = eventually(lambda: (r := _backlog(c)) and _cell(r, "dead") == "2" and r, timeout=30)
        assert _cell(dead, "depth") == "0"  # type: ignore[arg-type]

        token = _console(c)
        refused = c.post("/_overcast/backlog/redrive", data={"backlog": "mails", "token": "wrong"})
        assert refused.status_code == 403
        c.post("/_overcast/kv/switches/item", data={"key": "mail-fixed", "version": "", "value": "{}", "token": token})
        moved = c.post("/_overcast/backlog/redrive", data={"backlog": "mails", "token": token}, follow_redirects=True)
        assert "Re-drove 2 from mails" in moved.text
        for to in ("ada", "bob"):
            item = f"/_overcast/kv/outbox/item?key={to}"
            eventually(lambda item=item: "No item" not in c.get(item).text, timeout=20)  # type: ignore[misc]
        assert _cell(_backlog(c), "dead") == "0"
    redis.stop()  # type: ignore[attr-defined]
