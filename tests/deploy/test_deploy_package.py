"""The function's package: reproducible bytes, only what the runtime imports, and a handler
that serves from the unzipped package in a fresh interpreter without the CLI's dependencies."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from overcast.deploy.plan import make_plan, write_plan
from overcast.loader import load_app
from servers import Server
from servers.aws import start_moto

HERE = Path(__file__).resolve().parent
SHOP = HERE / "apps" / "shop"
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def moto() -> Iterator[Server]:
    """moto of its own: the shared fixture points this whole process at it (os.environ)."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


def _copy(to: Path, stamp: int) -> Path:
    shutil.copytree(SHOP, to, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    for path in to.rglob("*"):
        os.utime(path, (stamp, stamp))
    (to / "__pycache__").mkdir()
    (to / "__pycache__" / "shop.cpython-311.pyc").write_bytes(os.urandom(64))  # a cache is never packaged
    (to / "tests").mkdir()
    (to / "tests" / "test_shop.py").write_text("assert True\n")
    return to


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_builds_in_different_folders_are_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    one = write_plan(make_plan(load_app(_copy(tmp_path / "a" / "shop", 1_600_000_000)), "aws"))
    two = write_plan(make_plan(load_app(_copy(tmp_path / "elsewhere" / "b" / "shop", 1_700_000_000)), "aws"))
    assert one != two
    assert _sha256(one / "package.zip") == _sha256(two / "package.zip")
    assert _sha256(one / "main.tf.json") == _sha256(two / "main.tf.json")


def test_entries_are_sorted_with_fixed_times_and_only_what_the_function_imports(tmp_path: Path) -> None:
    plan = make_plan(load_app(_copy(tmp_path / "shop", 1_650_000_000)), "aws")
    with zipfile.ZipFile(__import__("io").BytesIO(plan.package.data)) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert {"overcast_handler.py", "shop.py", "overcast.toml", "overcast/providers/aws/lambda_.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/") or n.endswith(".pyc")]
    assert "overcast/cli.py" not in names and not [n for n in names if n.startswith("overcast/deploy/")]
    assert "croniter/croniter.py" in names and "dateutil/rrule.py" in names  # the cron schedule parses at import
    assert not [n for n in names if n.startswith("croniter/tests/")]
    families = {n.split("/")[2] for n in names if n.startswith("overcast/providers/") and n.count("/") > 2}
    assert families == {"aws", "local"}  # the target's cloud, and memory:// for the cache
    deploy_time = [
        "overcast/cost/",  # the cost engine, and the families' prices and price-list refreshers
        "overcast/providers/aws/pricing.py",
        "overcast/providers/aws/price_list.py",
        "overcast/providers/aws/prices-aws.json",
        "overcast/providers/aws/terraform.py",  # the renderer runs where `overcast plan` does
        "overcast/providers/local/devserver.py",  # the dev server, and its console's assets
        "overcast/providers/local/console/static/",
        "overcast/providers/local/console/templates/",
    ]
    assert not [n for n in names if n.startswith(tuple(deploy_time))]
    assert "overcast/providers/aws/arns.py" in names and "overcast/providers/local/memory_cache.py" in names
    assert (
        plan.documents["main.tf.json"]["resource"]["aws_lambda_function"]["function"]["handler"]
        == "overcast_handler.handler"
    )


def test_source_date_epoch_sets_the_entries_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    plan = make_plan(load_app(_copy(tmp_path / "shop", 1)), "aws")
    with zipfile.ZipFile(__import__("io").BytesIO(plan.package.data)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2023, 11, 14, 22, 13, 20)}


#: what Lambda's Python runtime has besides the standard library
LAMBDA_RUNTIME = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six.py")


def _lambda_runtime(folder: Path) -> Path:
    """A folder holding only what Lambda's runtime has, linked from this environment."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in LAMBDA_RUNTIME:
        (folder / name).symlink_to(site / name)
    return folder


def _serve(package: Path, moto: Server, tmp_path: Path, imports: str = "") -> dict[str, Any]:
    """Unzip ``package``, provision its resources on moto, and run package_run.py on it in a
    fresh interpreter that has only the package and what Lambda's runtime provides (importing
    ``imports`` from the package first)."""
    unzipped = tmp_path / "function"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(unzipped)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OVERCAST_", "PYTHON", "PIP_"))}
    env.update(moto.env, AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="eu-west-1")
    subprocess.run(
        [sys.executable, "-m", "overcast", "provision", str(unzipped), "--target", "aws"],
        env={**env, "PYTHONPATH": str(ROOT / "src")},
        check=True,
        capture_output=True,
    )
    site = [str(_lambda_runtime(tmp_path / "runtime"))]
    done = subprocess.run(
        [sys.executable, "-I", str(HERE / "package_run.py"), str(unzipped), *site],
        env={**env, "PACKAGE_RUN_IMPORTS": imports},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["overcast"] == str(unzipped / "overcast" / "__init__.py")
    assert report["batch"] == {"batchItemFailures": []}, done.stderr[-3000:]
    assert (report["status"], json.loads(report["body"])) == (200, {"id": "o1", "total": 12})
    return report


def test_the_unzipped_package_serves_without_the_cli_dependencies(moto: Server, tmp_path: Path) -> None:
    folder = write_plan(make_plan(load_app(_copy(tmp_path / "shop", 1)), "aws"))
    assert _serve(folder / "package.zip", moto, tmp_path)["forbidden_loaded"] == []


def test_what_a_function_never_reads_is_left_out_and_the_handler_still_serves(
    moto: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Type stubs, ``py.typed``, a distribution's RECORD and SBOM and METADATA's long
    description are left out; a requirement that reads its own version and entry points
    through importlib.metadata when imported still imports from the package, and the
    handler serves beside it."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(_wheel(tmp_path / "wheels")))
    app = _copy(tmp_path / "trimmed" / "shop", 1)
    (app / "requirements.txt").write_text("tinydep==1.0\n")
    folder = write_plan(make_plan(load_app(app), "aws"))
    with zipfile.ZipFile(folder / "package.zip") as archive:
        names = set(archive.namelist())
        metadata = archive.read("tinydep-1.0.dist-info/METADATA").decode()
    left_out = [n for n in names if n.endswith((".pyi", "/py.typed", "/RECORD")) or "/sboms/" in n]
    assert left_out == [] and "overcast/py.typed" not in names
    kept = {"tinydep-1.0.dist-info/entry_points.txt", "tinydep-1.0.dist-info/licenses/LICENSE", "tinydep/__init__.py"}
    assert kept <= names
    assert metadata == "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\nLicense-File: LICENSE\n"
    report = _serve(folder / "package.zip", moto, tmp_path, imports="tinydep")
    assert report["imported"] == {"tinydep": str(tmp_path / "function" / "tinydep" / "__init__.py")}


#: a requirement that reads its own metadata when imported, as OpenTelemetry's context does
_TINYDEP = """
from importlib.metadata import entry_points, version

assert version("tinydep") == "1.0"
(PLUGIN,) = [entry.load() for entry in entry_points(group="tinydep.plugins")]
VALUE = 42
"""


def _wheel(folder: Path) -> Path:
    """A pure-Python wheel written by hand (no build backend, no index needed), with what a
    function never reads (stubs, ``py.typed``, RECORD, an SBOM, a long description) and what
    it may (entry points, the licence)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tinydep-1.0-py3-none-any.whl"
    info = "tinydep-1.0.dist-info"
    files = {
        "tinydep/__init__.py": _TINYDEP,
        "tinydep/__init__.pyi": "VALUE: int\n",
        "tinydep/py.typed": "",
        "tinydep/plugin.py": "NAME = 'plugin'\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\nLicense-File: LICENSE\n\n"
        + "A long description nobody reads at run time.\n" * 200,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[tinydep.plugins]\nplugin = tinydep.plugin:NAME\n",
        f"{info}/licenses/LICENSE": "Permission is hereby granted, free of charge...\n",
        f"{info}/sboms/tinydep.cyclonedx.json": "{}\n",
    }
    record = [f"{name},," for name in files] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return folder


def test_requirements_are_installed_as_wheels_for_the_function_reproducibly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(_wheel(tmp_path / "wheels")))
    packages = []
    for where in ("one", "two"):
        app = _copy(tmp_path / where / "shop", 1)
        (app / "requirements.txt").write_text("tinydep==1.0\n")
        packages.append(make_plan(load_app(app), "aws").package)
    assert packages[0].data == packages[1].data
    names = set(packages[0].files)
    assert {"tinydep/__init__.py", "tinydep-1.0.dist-info/METADATA", "requirements.txt"} <= names
    assert not [n for n in names if n.endswith(("direct_url.json", "INSTALLER", "REQUESTED"))]


def test_a_requirement_without_a_wheel_for_the_platform_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overcast.errors import ConfigError

    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(_wheel(tmp_path / "wheels")))
    app = _copy(tmp_path / "shop", 1)
    (app / "requirements.txt").write_text("tinydep==2.0\n")
    with pytest.raises(ConfigError, match=r"requirements.txt: pip could not install wheels for manylinux2014_aarch64"):
        write_plan(make_plan(load_app(app), "aws"))
    assert not (app / ".overcast").exists()


def test_a_wsgi_app_gets_a2wsgi_and_requirements_naming_overcast_are_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(_wheel(tmp_path / "wheels")))
    app = tmp_path / "wsgi"
    app.mkdir()
    (app / "wsgi_site.py").write_text(
        "import overcast\n\napp = overcast.App('wsgi-site')\n\n"
        "def wsgi(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hi']\n\n"
        "app.http(wsgi)\n"
    )
    (app / "overcast.toml").write_text('[app]\nentry = "wsgi_site:app"\n\n[targets.aws]\ncloud = "aws"\n')
    (app / "requirements.txt").write_text("# the app's\novercast[aws]>=0.1\ntinydep==1.0\n")
    plan = make_plan(load_app(app), "aws")
    assert plan.deployment.runtime_packages == ("a2wsgi",)
    names = set(plan.package.files)
    assert "a2wsgi/__init__.py" in names and "tinydep/__init__.py" in names
    assert not [n for n in names if n.startswith(("croniter", "typer", "rich", "uvicorn", "watchfiles", "dotenv"))]
