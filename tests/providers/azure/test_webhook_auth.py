"""Who may post to the Event Grid webhook: the function key (the host checks it, the default),
a bearer token sent as a secret delivery property, or nobody until verification is
configured or switched off; in-process with the real ``azure-functions`` types."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from azf_support import Context, Worker, host_response, http_request, make_app

from overcast.errors import ConfigError
from overcast.providers.azure import function_app

BASE = "https://demo.azurewebsites.net"
TOKEN = "evg-9f2c4d1e-delivery-secret"
VALIDATION = [
    {
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2018-01-25T22:12:19.4556811Z",
        "dataVersion": "1",
    }
]
EVENT = [
    {
        "id": "e-1",
        "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
        "subject": "/blobServices/default/containers/up/blobs/a.txt",
        "data": {"url": "https://acct.blob.core.windows.net/up/a.txt"},
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2018-01-25T22:12:19.4556811Z",
        "dataVersion": "1",
    }
]


def _build(tmp_path: Path, level: str, events: str = "") -> tuple[Worker, list[Any]]:
    app = make_app(tmp_path)
    if events:
        config = tmp_path / "overcast.toml"
        config.write_text(config.read_text() + "\n[targets.azure.events]\n" + events)
    seen: list[Any] = []

    async def storage(event: Any) -> None:
        seen.append(event)

    return Worker(function_app(app, event_grid={"storage": storage}, webhook_auth_level=level)), seen  # type: ignore[arg-type]


def _post(worker: Worker, body: Any, headers: dict[str, str] | None = None, method: str = "POST") -> dict[str, Any]:
    request = http_request(
        method,
        f"{BASE}/eventgrid/storage",
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(body).encode(),
        route_params={"name": "storage"},
    )
    return host_response(worker.call("eventgrid", request, Context("eventgrid")))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("OVERCAST_TARGET", "azure")
    monkeypatch.delenv("OVERCAST_EVENTS_VERIFY", raising=False)
    monkeypatch.delenv("OVERCAST_EVENTS_TOKEN", raising=False)
    return monkeypatch


def test_anonymous_webhook_with_nothing_configured_refuses_even_the_handshake(
    tmp_path: Path, env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "overcast.azure.functions"):
        worker, seen = _build(tmp_path, "anonymous")
    try:
        said = [r for r in caplog.records if "refuses every delivery" in r.getMessage()]
        assert said and said[0].levelno == logging.ERROR
        for body, headers in ((VALIDATION, {"aeg-event-type": "SubscriptionValidation"}), (EVENT, {})):
            out = _post(worker, body, headers)
            assert out["status"] == 403, out
            text = out["body"].decode()
            assert "OVERCAST_EVENTS_TOKEN" in text and 'webhook_auth_level="function"' in text
            assert "Traceback" not in text
        assert seen == []
    finally:
        worker.close()


def test_a_bearer_token_sent_as_a_delivery_property(tmp_path: Path, env: Any) -> None:
    env.setenv("OVERCAST_EVENTS_TOKEN", TOKEN)
    worker, seen = _build(tmp_path, "anonymous")
    try:
        # the handshake proves nothing and triggers nothing: answered without the token
        out = _post(worker, VALIDATION, {"aeg-event-type": "SubscriptionValidation"})
        assert out["status"] == 200
        assert json.loads(out["body"]) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
        for header, reason in ((None, "no Authorization"), (f"Bearer {TOKEN}x", "not this app's"), (TOKEN, "Bearer")):
            out = _post(worker, EVENT, {} if header is None else {"authorization": header})
            assert out["status"] == 401 and reason in out["body"].decode(), out
        assert seen == []
        assert _post(worker, EVENT, {"authorization": f"Bearer {TOKEN}"})["status"] == 200
        assert [event.id for event in seen] == ["e-1"]
    finally:
        worker.close()


def test_switched_off_for_a_private_function_app(tmp_path: Path, env: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "overcast.azure.functions"):
        worker, seen = _build(tmp_path, "anonymous", 'verify = "off"\n')
    try:
        said = [r for r in caplog.records if "events.verify = off" in r.getMessage()]
        assert said and said[0].levelno == logging.WARNING
        assert _post(worker, VALIDATION, {"aeg-event-type": "SubscriptionValidation"})["status"] == 200
        assert _post(worker, EVENT)["status"] == 200 and len(seen) == 1
    finally:
        worker.close()


def test_the_function_key_is_the_default(tmp_path: Path, env: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "overcast.azure.functions"):
        worker, seen = _build(tmp_path, "function")
    try:
        assert "with the function key" in caplog.text
        bindings = json.loads(worker.functions["eventgrid"].get_function_json())["bindings"][0]
        assert bindings["authLevel"] == "FUNCTION"  # the host refuses a request without ?code=
        assert _post(worker, EVENT)["status"] == 200 and len(seen) == 1
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("level", "events", "message"),
    [
        ("anonymous", 'verify = "token"\n', "OVERCAST_EVENTS_TOKEN"),
        ("anonymous", 'verify = "function-key"\n', 'webhook_auth_level="function"'),
        ("function", 'verify = "oidc"\n', '"function-key"'),
        ("function", 'token = "x"\n', "unknown key 'token'"),
    ],
)
def test_bad_settings_are_clear_errors(tmp_path: Path, env: Any, level: str, events: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"\[targets\.azure\.events\]") as caught:
        _build(tmp_path, level, events)
    assert message in str(caught.value)
