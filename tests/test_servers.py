"""Every real server the suites use starts and answers its own protocol's simplest request."""

from __future__ import annotations

import socket
import urllib.request

from servers import Server


def _http_status(url: str, method: str = "GET") -> int:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def test_moto_answers(moto_server: Server) -> None:
    assert _http_status(f"{moto_server.endpoint}/moto-api/") == 200


def test_azurite_answers(azurite: Server) -> None:
    assert "AccountName=devstoreaccount1" in azurite.env["AZURE_STORAGE_CONNECTION_STRING"]
    with socket.create_connection((azurite.host, azurite.port), timeout=5):
        pass


def test_gcs_emulator_answers(gcs_emulator: Server) -> None:
    assert _http_status(f"{gcs_emulator.endpoint}/storage/v1/b?project=p") == 200


def test_firestore_emulator_answers(firestore_emulator: Server) -> None:
    assert _http_status(f"{firestore_emulator.endpoint}/") == 200


def test_pubsub_emulator_answers(pubsub_emulator: Server) -> None:
    assert _http_status(f"{pubsub_emulator.endpoint}/") == 200


def test_redis_answers(redis_server: Server) -> None:
    with socket.create_connection((redis_server.host, redis_server.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"


def test_postgres_answers(postgres_server: Server) -> None:
    assert postgres_server.env["OVERCAST_TEST_POSTGRES_URL"].startswith("postgresql://")
    with socket.create_connection((postgres_server.host, postgres_server.port), timeout=5):
        pass
