"""The registry: URL schemes to provider classes, install hints, third-party entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import overcast
from overcast.errors import ConfigError, MissingDependency
from overcast.resources.registry import known_schemes, register, resolve


def unique_scheme() -> str:
    return "x" + uuid.uuid4().hex[:10]


def test_unknown_scheme_names_resource_scheme_and_known_schemes(tmp_path: Path) -> None:
    (tmp_path / "overcast.toml").write_text('[targets.local]\nkv.users = "dynamo://users"\n')
    app = overcast.App("demo", config=tmp_path)
    users = app.kv("users")
    with pytest.raises(ConfigError) as caught:
        users.sync.get("u1")
    message = str(caught.value)
    assert "'users'" in message
    assert "'dynamo'" in message
    assert "dynamodb" in message and "sqlite" in message and "memory" in message


def test_scheme_of_another_kind_is_unknown_for_this_kind() -> None:
    with pytest.raises(ConfigError, match=r"known schemes for cache: .*memory"):
        overcast.open_cache("sqlite:///x.db", name="sessions")


def test_missing_extra_names_the_pip_line() -> None:
    scheme = unique_scheme()
    register("kv", scheme, "overcast_provider_that_is_not_installed:Store", extra="fancy")
    assert scheme in known_schemes("kv")
    with pytest.raises(MissingDependency) as caught:
        overcast.open_kv(f"{scheme}://table", name="orders")
    message = str(caught.value)
    assert "kv 'orders'" in message
    assert repr(scheme) in message
    assert "pip install 'overcast[fancy]'" in message
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value.__cause__, ImportError)


def test_known_cloud_providers_carry_their_install_hint() -> None:
    from overcast.resources.registry import _registry

    known_schemes("kv")  # the families' entry points are read on the first look-up
    assert _registry[("kv", "dynamodb")].install == "pip install 'overcast[aws]'"
    assert _registry[("kv", "firestore")].install == "pip install 'overcast[gcp]'"
    assert _registry[("cache", "momento")].install == "pip install 'overcast[momento]'"
    assert _registry[("kv", "sqlite")].install is None


def test_register_a_provider_directly() -> None:
    scheme = unique_scheme()
    register("kv", scheme, "overcast.providers.local.memory_kv:MemoryKeyValueStore")
    store = overcast.open_kv(f"{scheme}://direct", name="direct")
    store.sync.put("k", {"v": 1})
    item = store.sync.get("k")
    assert item is not None and item.value == {"v": 1}
    assert resolve("kv", scheme, resource="direct").__name__ == "MemoryKeyValueStore"


def test_register_an_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="unknown resource kind 'table'"):
        register("table", unique_scheme(), "a:b")


PROVIDER = """
from overcast.providers.local.memory import MemoryKeyValueStore


class ThirdPartyStore(MemoryKeyValueStore):
    \"\"\"A provider shipped by someone else.\"\"\"
"""

PROBE = """
import json, overcast
from overcast.resources.registry import known_schemes

store = overcast.open_kv("thirdparty://t", name="orders")
store.sync.put("a", {"n": 1})
print(json.dumps({"cls": store.__class__.__name__, "value": store.sync.get("a").value,
                  "known": "thirdparty" in known_schemes("kv")}))
"""


def test_a_third_party_provider_through_its_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "thirdparty_provider").mkdir(parents=True)
    (site / "thirdparty_provider" / "__init__.py").write_text(textwrap.dedent(PROVIDER))
    dist = site / "thirdparty_provider-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-provider\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[overcast.providers]\nkv.thirdparty = thirdparty_provider:ThirdPartyStore\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cls": "ThirdPartyStore", "value": {"n": 1}, "known": True}


def test_without_the_entry_point_the_scheme_is_unknown(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "unknown scheme 'thirdparty'" in done.stderr


FAMILY_NAMES = {"local", "aws", "gcp", "azure", "redis", "momento", "postgres"}


def test_every_family_declares_itself_through_its_entry_point() -> None:
    from overcast.resources.registry import families

    found = families()
    assert set(found) >= FAMILY_NAMES
    assert {name: found[name].cloud for name in ("aws", "gcp", "azure", "local", "redis")} == {
        "aws": "aws",
        "gcp": "gcp",
        "azure": "azure",
        "local": None,
        "redis": None,
    }
    assert found["aws"].schemes["kv"]["dynamodb"] == "overcast.providers.aws.dynamodb:DynamoDBKeyValueStore"
    assert found["gcp"].native_metrics is not None and found["gcp"].native_metrics.exporter == "gcp_logging"


def test_family_declarations_import_no_sdk() -> None:
    code = (
        "import sys\nfrom overcast.resources.registry import families\nfamilies()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'boto3', 'botocore', 'google', 'azure', 'redis', 'psycopg', 'momento', 'grpc', 'opentelemetry'})\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_import_overcast_reads_no_entry_point() -> None:
    code = "import sys, overcast\nprint('importlib.metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_upstream_names_come_from_the_families() -> None:
    from overcast.resources.registry import upstream_name

    assert upstream_name("gs") == "gcs"
    assert upstream_name("postgresql") == "postgres"
    assert upstream_name("rediss") == "redis"
    assert upstream_name("dynamodb") == "dynamodb"
    assert upstream_name(unique_scheme()).startswith("x")


def test_the_test_only_family_is_found_by_its_entry_point() -> None:
    """tests/plugin_family, installed by scripts/test: its schemes resolve like Overcast's own."""
    from overcast.resources.registry import families

    assert resolve("kv", "plugkv", resource="plugin").__name__ == "PluginKeyValueStore"
    assert resolve("queue", "plugq", resource="plugin").__name__ == "PluginQueue"
    assert families()["plugin"].upstreams["plugkv"] == "plugin_kv"


def test_an_entry_point_naming_no_family_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "not_a_family").mkdir(parents=True)
    (site / "not_a_family" / "__init__.py").write_text("FAMILY = {'name': 'oops'}\n")
    dist = site / "not_a_family-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: not-a-family\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[overcast.providers]\noops = not_a_family:FAMILY\n")
    code = (
        "from overcast.resources.registry import families\n"
        "try:\n    families()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    assert out.startswith("ConfigError") and "'oops'" in out and "not_a_family:FAMILY" in out


def test_each_clouds_native_metrics_exporter_comes_from_its_family(monkeypatch: pytest.MonkeyPatch) -> None:
    from overcast.telemetry._exporters import metric_readers

    for variable in ("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "APPLICATIONINSIGHTS_CONNECTION_STRING"):
        monkeypatch.delenv(variable, raising=False)

    def exporters(cloud: str | None) -> list[str]:
        return [type(reader._exporter).__name__ for reader in metric_readers(cloud)]  # type: ignore[attr-defined]

    assert exporters("aws") == ["EmbeddedMetricExporter"]
    assert exporters("gcp") == ["CloudLoggingMetricExporter"]
    assert exporters("azure") == []  # Azure Monitor only with its connection string
    assert exporters("local") == [] and exporters(None) == []


def test_every_declared_class_and_runtime_exists() -> None:
    from overcast.resources.registry import families, load_attribute

    for family in families().values():
        targets = [t for schemes in family.schemes.values() for t in schemes.values()]
        targets += list(family.runtimes.values()) + ([family.log_fields] if family.log_fields else [])
        for target in targets:
            assert callable(load_attribute(target)), f"family {family.name!r}: {target}"


def test_a_bundle_without_metadata_still_finds_overcasts_own_families(tmp_path: Path) -> None:
    """Overcast's source copied into a bundle without its .dist-info (no entry points)."""
    import shutil

    shutil.copytree(Path(overcast.__file__).parent, tmp_path / "overcast")
    code = (
        "import sys\nsys.path.insert(0, sys.argv[1])\nfrom overcast.resources import registry\n"
        "print(registry.__file__.startswith(sys.argv[1]), registry.known_schemes('kv'), sorted(registry.families()))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path)], check=True, capture_output=True, text=True, env={}
    )
    assert done.stdout.strip() == (
        "True ['azuretables', 'dynamodb', 'firestore', 'memory', 'postgresql', 'redis', 'rediss', 'replicated', "
        "'sqlite'] "
        "['aws', 'azure', 'gcp', 'local', 'momento', 'postgres', 'redis']"
    )
