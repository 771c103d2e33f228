"""The CLI as a new user meets it: one argument order, wrong forms that suggest the right one,
a busy port said before the banner, missing extras reported one way, exit codes, and the
sample output in docs/cli.md being what the tool prints.

The "missing extra" cases run the CLI in a subprocess whose imports of a cloud's SDK are
refused by a meta-path finder (a fake uninstall: every extra is installed here). They run
with moto's server in the environment (``AWS_ENDPOINT_URL`` and keys, as CI's test workers
have them), where DynamoDB's botocore-free client could answer: without the extra the
resource is still "not checked", whatever half works."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overcast.cli import cli

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

APP = """
import overcast

app = overcast.App({name!r})
users = app.kv("users")
"""

# What each extra brings, as top-level modules: refused by the fake uninstall.
EXTRA_MODULES = {
    "aws": ("boto3", "botocore", "s3transfer"),
    "gcp": ("google",),
    "azure": ("azure",),
    "momento": ("momento",),
    "redis": ("redis",),
    "postgres": ("psycopg", "psycopg_pool"),
}

BLOCKER = """
import sys
from importlib.abc import MetaPathFinder

class _Uninstalled(MetaPathFinder):  # the extra's packages, as if never installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Uninstalled())
from overcast.cli import main
sys.argv = ["overcast", *{args!r}]
main()
"""


def _project(folder: Path, targets: str, app: str = APP) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(app.format(name=f"usage{uuid.uuid4().hex[:8]}"))
    (folder / "overcast.toml").write_text('[app]\nentry = "app:app"\n\n' + targets)


def _without_extras(extras: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    blocked = sorted({module for extra in extras for module in EXTRA_MODULES[extra]})
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("OVERCAST_TARGET", None)
    # this checkout's code, also when the tests run with a relative PYTHONPATH=src
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=blocked, args=args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- one argument order --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["dev", "run", "doctor", "provision"])
def test_every_command_takes_the_app_first_and_the_target_as_an_option(command: str) -> None:
    result = runner.invoke(cli, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"Usage: .*" + command + r" \[OPTIONS\] \[APP\]", result.output, re.IGNORECASE), result.output
    assert "--target" in result.output and "-t" in result.output


@pytest.mark.parametrize("command", ["dev", "run", "doctor", "provision"])
def test_a_target_named_where_the_app_goes_suggests_the_option(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, '[targets.staging]\nkv.users = "memory://users"\n')
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, [command, "staging"])
    assert result.exit_code == 1
    assert "'staging' is a target, not an app" in result.stderr
    assert f"overcast {command} [APP] --target staging" in result.stderr


def test_the_old_provision_form_names_the_new_one(tmp_path: Path) -> None:
    _project(tmp_path, '[targets.staging]\nkv.users = "memory://users"\n')
    result = runner.invoke(cli, ["provision", "staging", "--app", str(tmp_path)])
    assert result.exit_code == 1
    assert f"overcast provision {tmp_path} --target staging" in result.stderr


def test_provision_and_doctor_take_the_same_target_option(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "avatars"  # absolute: file:// + /tmp/...
    _project(tmp_path, f'[targets.staging]\nkv.users = "memory://u"\nbucket.avatars = "file://{folder}"\n')
    (tmp_path / "app.py").write_text(APP.format(name="prov") + 'avatars = app.bucket("avatars")\n')
    before = runner.invoke(cli, ["doctor", str(tmp_path), "-t", "staging"], env={"COLUMNS": "200"})
    assert before.exit_code == 1, before.output
    assert "run: overcast provision --target staging" in before.output
    made = runner.invoke(cli, ["provision", str(tmp_path), "-t", "staging"], env={"COLUMNS": "200"})
    assert made.exit_code == 0, made.output
    assert folder.is_dir()
    after = runner.invoke(cli, ["doctor", str(tmp_path), "--target", "staging"], env={"COLUMNS": "200"})
    assert after.exit_code == 0, after.output
    assert "target staging" in after.output and "target local" not in after.output


def test_dev_refuses_an_unknown_target_option_before_serving(tmp_path: Path) -> None:
    _project(tmp_path, "")
    result = runner.invoke(cli, ["dev", str(tmp_path), "--target", "nowhere", "--no-reload"])
    assert result.exit_code == 1
    assert "unknown target 'nowhere'" in result.stderr and "known targets: local" in result.stderr
    assert "overcast dev" not in result.output


# -- doctor: which targets, exit codes -----------------------------------------------------


def test_doctor_checks_the_current_target_unless_told(tmp_path: Path) -> None:
    _project(tmp_path, '[targets.local]\nkv.users = "memory://u"\n[targets.b]\nkv.users = "memory://v"\n')
    one = runner.invoke(cli, ["doctor", str(tmp_path)], env={"COLUMNS": "200"})
    assert one.exit_code == 0, one.output
    assert "target local (current)" in one.output and "target b" not in one.output
    current = runner.invoke(cli, ["doctor", str(tmp_path)], env={"COLUMNS": "200", "OVERCAST_TARGET": "b"})
    assert "target b (current)" in current.output and "target local" not in current.output
    both = runner.invoke(cli, ["doctor", str(tmp_path), "-t", "b", "-t", "local"], env={"COLUMNS": "200"})
    assert both.output.index("target b") < both.output.index("target local"), both.output
    every = runner.invoke(cli, ["doctor", str(tmp_path), "--all-targets"], env={"COLUMNS": "200"})
    assert "target local (current)" in every.output and "target b" in every.output
    clash = runner.invoke(cli, ["doctor", str(tmp_path), "--all-targets", "-t", "b"])
    assert clash.exit_code == 1 and "not both" in clash.stderr
    unknown = runner.invoke(cli, ["doctor", str(tmp_path), "-t", "nowhere"])
    assert unknown.exit_code == 1 and "unknown target 'nowhere'" in unknown.stderr


def test_doctor_exit_codes_are_0_reachable_1_not_2_usage(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _project(
        tmp_path / "p",
        f'[targets.local]\nkv.users = "memory://u"\n[targets.bad]\nkv.users = "sqlite:///{blocker}/x.db"\n',
    )
    assert runner.invoke(cli, ["doctor", str(tmp_path / "p")]).exit_code == 0
    assert runner.invoke(cli, ["doctor", str(tmp_path / "p"), "-t", "bad"]).exit_code == 1
    assert runner.invoke(cli, ["doctor", str(tmp_path / "p"), "--no-such-option"]).exit_code == 2


FAMILY_TARGETS = """
[targets.aws]
kv.users = "dynamodb://users"
[targets.gcp]
kv.users = "firestore://users"
[targets.azure]
kv.users = "azuretables://users"
[targets.redis]
kv.users = "redis://cache.internal:6379/0"
[targets.postgres]
kv.users = "postgresql://db.internal:5432/app"
"""


@pytest.mark.usefixtures("moto_server")
def test_a_missing_extra_is_one_not_checked_line_for_every_family_fake_uninstall(tmp_path: Path) -> None:
    _project(tmp_path, FAMILY_TARGETS + '[targets.momento]\ncache.c = "momento://c"\n')
    (tmp_path / "app.py").write_text(APP.format(name="fam") + 'c = app.cache("c")\n')
    toml = (tmp_path / "overcast.toml").read_text()
    for name in ("aws", "gcp", "azure", "redis", "postgres"):
        toml = toml.replace(f"[targets.{name}]\n", f'[targets.{name}]\ncache.c = "memory://c"\n')
    toml = toml.replace("[targets.momento]\n", '[targets.momento]\nkv.users = "memory://u"\n')
    (tmp_path / "overcast.toml").write_text(toml)
    extras = ["aws", "gcp", "azure", "momento", "redis", "postgres"]
    result = _without_extras(extras, ["doctor", ".", *[a for e in extras for a in ("-t", e)]], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for extra in extras:
        rows = [line for line in result.stdout.splitlines() if "not checked" in line and f"[{extra}]" in line]
        assert len(rows) == 1, (extra, result.stdout)
        assert f"! not checked: pip install 'overcast[{extra}]'" in rows[0]
    assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stdout
    assert "every resource is reachable (6 not checked: extra not installed)" in result.stdout
    # URLs as written in overcast.toml: the port's colon is not %3A
    assert "redis://cache.internal:6379/0" in result.stdout
    assert "postgresql://db.internal:5432/app" in result.stdout


def test_an_app_that_imports_a_package_not_installed_names_it(tmp_path: Path) -> None:
    _project(tmp_path, "", app=APP + "import overcast_no_such_package_here.sub\n")
    result = runner.invoke(cli, ["doctor", str(tmp_path)])
    assert result.exit_code == 1
    assert "imports 'overcast_no_such_package_here', which is not installed" in result.stderr
    assert "pip install overcast_no_such_package_here" in result.stderr
    assert "Traceback" not in result.stderr


# -- a busy port ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["dev", "run"])
def test_a_busy_port_is_said_before_the_banner(command: str, tmp_path: Path) -> None:
    _project(tmp_path, "")
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        args = [command, str(tmp_path), "--host", "127.0.0.1", "--port", str(port)]
        result = runner.invoke(cli, [*args, "--no-reload"] if command == "dev" else args)
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"--port {port + 1}" in result.stderr
    assert " on target " not in result.output and "Uvicorn running" not in result.output  # no banner


# -- docs/cli.md shows what doctor prints --------------------------------------------------


def _cells(text: str) -> list[list[str]]:
    """A table's rows as cell texts (title lines as one cell), whatever the column widths."""
    rows = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or set(line) <= set("┏┳┓┡╇┩└┴┘━─ "):
            continue
        cells = [cell.strip() for cell in re.split(r"[┃│]", line)]
        rows.append([cell for cell in cells if cell] if len(cells) > 1 else [line.strip()])
    return rows


def _doc_samples() -> list[tuple[list[str], list[str], str]]:
    """Each ``$ overcast doctor …`` sample of docs/cli.md: (arguments, extras uninstalled, output)."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    samples = []
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        first, _, output = block.partition("\n")
        if not first.startswith("$ overcast doctor"):
            continue
        command, _, comment = first.partition("#")
        missing = re.findall(r"without the (\w+) extra", comment)
        samples.append((command.split()[3:], missing, output))
    return samples


def test_the_docs_show_doctor_samples() -> None:
    samples = _doc_samples()
    assert len(samples) >= 2
    assert any(missing for _, missing, _ in samples)


@pytest.mark.usefixtures("moto_server")
@pytest.mark.parametrize("sample", range(2))
def test_the_docs_doctor_samples_are_what_it_prints(sample: int, tmp_path: Path) -> None:
    args, missing, expected = _doc_samples()[sample]
    shutil.copytree(
        ROOT / "examples" / "users", tmp_path / "examples" / "users", ignore=shutil.ignore_patterns(".overcast")
    )
    made = _without_extras([], ["provision", "examples/users"], tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    result = _without_extras(missing, ["doctor", *args], tmp_path)
    printed = textwrap.dedent(result.stdout + result.stderr)
    assert _cells(printed) == _cells(expected), printed
