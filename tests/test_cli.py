"""The ``overcast`` command: --version, errors, doctor, provision, and a real ``overcast run`` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import overcast
from overcast.cli import cli

runner = CliRunner()

APP = """
import overcast

app = overcast.App({name!r})
users = app.kv("users")
jobs = app.queue("jobs")
avatars = app.bucket("avatars")
mail_key = app.secret("mail-key")


async def asgi(scope, receive, send):
    assert scope["type"] == "http"
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": b"hello from " + app.name.encode()}})


app.http(asgi)


@app.subscribe(jobs)
async def work(event):
    pass
"""


def _project(folder: Path, toml_targets: str) -> str:
    name = f"cli{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(APP.format(name=name))
    (folder / "overcast.toml").write_text('[app]\nentry = "app:app"\n\n' + toml_targets)
    return name


def _memory_targets() -> str:
    unique = uuid.uuid4().hex[:8]
    kinds = ("kv", "queue", "bucket")
    return "[targets.local]\n" + "".join(f'defaults.{kind} = "memory://{unique}-{{name}}"\n' for kind in kinds)


def test_version() -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"overcast {overcast.__version__}"


def test_module_runs_as_python_m_overcast() -> None:
    done = subprocess.run([sys.executable, "-m", "overcast", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"overcast {overcast.__version__}"


@pytest.mark.parametrize("command", [["doctor"], ["provision", "."], ["run"], ["dev"]])
def test_errors_are_one_red_line_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no overcast.toml here
    result = runner.invoke(cli, command)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no overcast.toml in")
    assert "Traceback" not in result.output


def test_unknown_target_is_refused_before_serving(tmp_path: Path) -> None:
    _project(tmp_path, _memory_targets())
    result = runner.invoke(cli, ["dev", str(tmp_path)], env={"OVERCAST_TARGET": "nowhere"})
    assert result.exit_code == 1
    assert "unknown target 'nowhere'" in result.stderr
    result = runner.invoke(cli, ["provision", str(tmp_path), "--target", "nowhere"])
    assert result.exit_code == 1
    assert "unknown target 'nowhere'" in result.stderr
    assert "known targets: local" in result.stderr


def test_doctor_reports_every_resource_reachable(tmp_path: Path) -> None:
    _project(tmp_path, _memory_targets())
    result = runner.invoke(cli, ["doctor", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "target local (current)" in result.output
    for kind, name in (("kv", "users"), ("queue", "jobs")):
        row = next(line for line in result.output.splitlines() if f" {name} " in line)
        assert kind in row and "memory://" in row and "✓ reachable" in row
    assert "every resource is reachable" in result.output


def test_doctor_fails_when_a_resource_is_unreachable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder must be")
    targets = (
        "[targets.local]\n"
        f'kv.users = "memory://{uuid.uuid4().hex}"\n'
        f'queue.jobs = "sqlite:///{blocker}/jobs.db"\n'
        f'bucket.avatars = "file://{blocker}/avatars"\n'
    )
    _project(tmp_path / "proj", targets)
    result = runner.invoke(cli, ["doctor", str(tmp_path / "proj")], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    for name in ("jobs", "avatars"):
        row = next(line for line in result.output.splitlines() if f" {name} " in line)
        assert "✗" in row and "reachable" not in row
    users = next(line for line in result.output.splitlines() if " users " in line)
    assert "✓ reachable" in users
    assert "2 resource check(s) failed" in result.stderr


def test_doctor_and_provision_on_the_embedded_defaults(tmp_path: Path) -> None:
    _project(tmp_path, "")
    before = runner.invoke(cli, ["doctor", str(tmp_path)], env={"COLUMNS": "250"})
    assert before.exit_code == 1  # the bucket's folder is not there yet
    assert "run: overcast provision --target local" in before.output
    provisioned = runner.invoke(cli, ["provision", str(tmp_path)], env={"COLUMNS": "250"})
    assert provisioned.exit_code == 0, provisioned.output
    assert (tmp_path / ".overcast" / "kv" / "users.db").is_file()
    assert (tmp_path / ".overcast" / "buckets" / "avatars").is_dir()
    after = runner.invoke(cli, ["doctor", str(tmp_path)], env={"COLUMNS": "250"})
    assert after.exit_code == 0, after.output
    checks = (("users", "sqlite:///"), ("jobs", "sqlite:///"), ("avatars", "file://.overcast/"), ("mail-key", "env://"))
    for name, scheme in checks:
        row = next(line for line in after.output.splitlines() if f" {name} " in line)
        assert scheme in row and "✓ reachable" in row


def test_doctor_names_the_extra_to_install_for_another_target(tmp_path: Path) -> None:
    # A provider whose package is not installed (every real extra is, in the test environment).
    from overcast.resources.registry import register

    for kind in ("kv", "queue", "bucket", "secret"):
        register(kind, "elsewhere", "overcast_missing_cloud_sdk.providers:Store", extra="elsewhere")
    targets = _memory_targets() + (
        '\n[targets.other]\nkv.users = "elsewhere://users"\nqueue.jobs = "elsewhere://jobs"\n'
        'bucket.avatars = "elsewhere://avatars"\nsecret.mail-key = "elsewhere://mail"\n'
    )
    _project(tmp_path, targets)
    result = runner.invoke(cli, ["doctor", str(tmp_path), "--target", "other"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "target other" in result.output and "target local" not in result.output
    assert "every resource is reachable (4 not checked: extra not installed)" in result.output
    urls = ("elsewhere://users", "elsewhere://jobs", "elsewhere://avatars", "elsewhere://mail")
    rows = [line for line in result.output.splitlines() if any(url in line for url in urls)]
    assert len(rows) == 4
    assert all("! not checked: pip install 'overcast[elsewhere]'" in row for row in rows), result.output


def test_doctor_fails_when_a_target_has_no_provider_for_a_resource(tmp_path: Path) -> None:
    _project(tmp_path, _memory_targets() + '\n[targets.gcp]\nkv.users = "memory://x"\n')
    result = runner.invoke(cli, ["doctor", str(tmp_path), "--all-targets"], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "✗ queue 'jobs' has no provider on target 'gcp'" in result.output
    assert "✓ reachable" in result.output


def test_provision_creates_every_resource_idempotently(tmp_path: Path) -> None:
    targets = (
        "[targets.local]\n"
        f'kv.users = "memory://{uuid.uuid4().hex}"\n'
        "[targets.files]\n"
        'kv.users = "memory://users"\n'
        'queue.jobs = "sqlite:///state/jobs.db"\n'
        'defaults.secret = "env://"\n'
        'bucket.avatars = "file://state/avatars"\n'
    )
    _project(tmp_path, targets)
    first = runner.invoke(cli, ["provision", str(tmp_path), "-t", "files"], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert (tmp_path / "state" / "jobs.db").is_file()
    assert (tmp_path / "state" / "avatars").is_dir()
    assert "provisioned target files" in first.output
    assert "sqlite:///" in first.output and "jobs" in first.output
    second = runner.invoke(cli, ["provision", str(tmp_path), "-t", "files"], env={"COLUMNS": "200"})
    assert second.exit_code == 0, second.output
    assert second.output == first.output
    assert "OVERCAST_TARGET" not in os.environ or os.environ["OVERCAST_TARGET"] != "files"


# -- a real `overcast run` process ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    name = _project(tmp_path, _memory_targets())
    port = _free_port()
    env = {**os.environ, "PORT": str(port)}
    env.pop("OVERCAST_TARGET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "overcast", "run", "--host", "127.0.0.1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", name
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_overcast_run_serves_on_port_from_the_environment(served: tuple[str, str]) -> None:
    base, name = served
    deadline = time.monotonic() + 30
    while True:
        try:
            response = httpx.get(base + "/", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert response.status_code == 200
    assert response.text == f"hello from {name}"
    assert "server" not in response.headers


def test_run_refuses_in_process_workers_in_several_server_processes(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["run", str(tmp_path), "--workers", "2", "--with-workers"], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "every schedule would fire 2 times" in result.output


def test_doctor_names_each_targets_cloud_and_refuses_a_mixed_one(tmp_path: Path) -> None:
    targets = _memory_targets() + '[targets.prod]\nkv.users = "dynamodb://users"\nbucket.avatars = "gs://avatars"\n'
    targets += '[targets.fixed]\ncloud = "gcp"\ndefaults.kv = "memory://{name}"\n'
    _project(tmp_path, targets)
    result = runner.invoke(cli, ["doctor", str(tmp_path), "--all-targets", "--timeout", "0.5"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "target fixed, cloud gcp" in result.output
    assert "[targets.prod] mixes clouds" in result.stderr
    assert "aws: kv.users" in result.stderr and "gcp: bucket.avatars" in result.stderr


def test_doctor_never_shows_credentials_from_the_environment(tmp_path: Path) -> None:
    targets = (
        _memory_targets() + '[targets.prod]\ndefaults.kv = "memory://{name}"\ndefaults.queue = "memory://{name}"\n'
    )
    targets += 'defaults.bucket = "memory://{name}"\ndefaults.secret = "memory://s"\n'
    targets += 'kv.users = "${OVERCAST_TEST_CLI_DB}"\n'
    _project(tmp_path, targets)
    env = {"COLUMNS": "200", "OVERCAST_TEST_CLI_DB": "memory://alice:hunter2@users"}
    result = runner.invoke(cli, ["doctor", str(tmp_path), "-t", "prod"], env=env)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if " users " in line and "memory://users" in line)
    assert "✓ reachable" in row
    assert "hunter2" not in result.output + result.stderr and "alice" not in result.output + result.stderr
