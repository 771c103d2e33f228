"""Shared pytest setup: the conformance plugin selects tests by provider capabilities, and one
session fixture per real server (started on first use in each test process, see tests/servers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from overcast.testing.conformance.plugin import pytest_collection_modifyitems, pytest_configure
from servers import Server
from servers.aws import start_moto
from servers.azure import start_azurite
from servers.gcp import start_firestore, start_gcs, start_pubsub
from servers.postgres import start_postgres
from servers.redis import start_redis, start_redis_cluster

__all__ = ["pytest_collection_modifyitems", "pytest_configure"]


def _serve(server: Server) -> Iterator[Server]:
    server.apply_env()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    """moto's server; AWS_ENDPOINT_URL and test credentials are set for this process."""
    yield from _serve(start_moto())


@pytest.fixture(scope="session")
def azurite() -> Iterator[Server]:
    """Azurite; AZURE_STORAGE_CONNECTION_STRING is set for this process."""
    yield from _serve(start_azurite())


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[Server]:
    """Google's Firestore emulator; FIRESTORE_EMULATOR_HOST is set for this process."""
    yield from _serve(start_firestore())


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Server]:
    """Google's Pub/Sub emulator; PUBSUB_EMULATOR_HOST is set for this process."""
    yield from _serve(start_pubsub())


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[Server]:
    """fake-gcs-server; STORAGE_EMULATOR_HOST is set for this process."""
    yield from _serve(start_gcs())


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """redis-server; OVERCAST_TEST_REDIS_URL is set for this process."""
    yield from _serve(start_redis())


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Server]:
    """A three-node Redis Cluster; OVERCAST_TEST_REDIS_CLUSTER_URL is set for this process."""
    yield from _serve(start_redis_cluster())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """A PostgreSQL cluster; OVERCAST_TEST_POSTGRES_URL is set for this process."""
    yield from _serve(start_postgres())


@pytest.fixture
def metric_reader() -> Iterator[object]:
    """Telemetry on for one test, its metrics in an in-memory reader (the real SDK); off after."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from overcast import telemetry

    found = InMemoryMetricReader()
    telemetry.configure(service_name="overcast-tests", metric_readers=[found], span_processors=[], set_global=False)
    yield found
    telemetry.shutdown()
