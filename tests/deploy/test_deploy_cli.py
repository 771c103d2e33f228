"""`overcast plan|deploy|destroy` from the command line; deploy and destroy run a stand-in for
tofu/terraform (a script on PATH that records its arguments and working folder)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overcast.cli import cli

HERE = Path(__file__).resolve().parent
SHOP = HERE / "apps" / "shop"
runner = CliRunner()

STAND_IN = """#!{python}
import json, os, sys
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "args": sys.argv[1:], "cwd": os.getcwd()}}) + "\\n")
sys.exit(int(os.environ.get("STAND_IN_EXIT", "0")))
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    monkeypatch.delenv("OVERCAST_TERRAFORM", raising=False)
    folder = tmp_path / "shop"
    shutil.copytree(SHOP, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    monkeypatch.chdir(folder)
    return folder


def stand_in(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``name`` alone on PATH; returns the log of its calls."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    log = folder / "calls.jsonl"
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("STAND_IN_LOG", str(log))
    return log


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("command", ["plan", "deploy", "destroy"])
def test_the_app_comes_first_and_the_target_is_an_option(command: str, shop: Path) -> None:
    result = runner.invoke(cli, [command, "--help"], env={"COLUMNS": "200"})
    assert re.search(rf"Usage: .*{command} \[OPTIONS\] \[APP\]", result.output), result.output
    assert "--target" in result.output and "-t" in result.output
    result = runner.invoke(cli, [command, "aws"])
    assert result.exit_code == 1
    assert "'aws' is a target, not an app" in result.stderr
    assert f"overcast {command} [APP] --target aws" in result.stderr


def test_plan_writes_the_build_folder_and_says_what_it_made(shop: Path) -> None:
    result = runner.invoke(cli, ["plan", "--target", "aws"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"plan of shop on target aws: \d+ resources in \.overcast/build/aws", result.output)
    assert re.search(r"package\.zip: [\d.]+ MB, \d+ files, sha256 [0-9a-f]{16}", result.output)
    assert (shop / ".overcast" / "build" / "aws" / "main.tf.json").is_file()


def test_deploy_runs_init_and_apply_in_the_build_folder(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = stand_in(tmp_path / "bin", "terraform", monkeypatch)
    result = runner.invoke(cli, ["deploy", ".", "-t", "aws", "--auto-approve"])
    assert result.exit_code == 0, result.output
    build = str(shop / ".overcast" / "build" / "aws")
    assert calls(log) == [
        {"tool": "terraform", "args": ["init", "-input=false"], "cwd": build},
        {"tool": "terraform", "args": ["apply", "-input=false", "-auto-approve"], "cwd": build},
    ]


def test_without_auto_approve_the_tool_asks(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = stand_in(tmp_path / "bin", "tofu", monkeypatch)
    assert runner.invoke(cli, ["deploy", "-t", "aws"]).exit_code == 0
    assert [c["args"] for c in calls(log)] == [["init", "-input=false"], ["apply"]]
    assert {c["tool"] for c in calls(log)} == {"tofu"}


def test_destroy_runs_on_the_written_plan(shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = stand_in(tmp_path / "bin", "terraform", monkeypatch)
    monkeypatch.setenv("OVERCAST_TERRAFORM", "terraform")
    result = runner.invoke(cli, ["destroy", "-t", "aws", "--auto-approve"])
    assert result.exit_code == 0, result.output
    assert [c["args"] for c in calls(log)] == [["init", "-input=false"], ["destroy", "-input=false", "-auto-approve"]]
    assert calls(log)[1]["cwd"] == str(shop / ".overcast" / "build" / "aws")


def test_the_tools_failure_is_the_commands_exit_status(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = stand_in(tmp_path / "bin", "terraform", monkeypatch)
    monkeypatch.setenv("STAND_IN_EXIT", "3")
    result = runner.invoke(cli, ["deploy", "-t", "aws", "--auto-approve"])
    assert result.exit_code == 3
    assert [c["args"][0] for c in calls(log)] == ["init"]  # apply never ran


def test_without_tofu_or_terraform_the_error_says_how_to_install_and_keeps_the_plan(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(cli, ["deploy", "-t", "aws"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "neither tofu nor terraform is on PATH" in message
    assert "install OpenTofu (https://opentofu.org/docs/intro/install/) or Terraform" in message
    build = shop / ".overcast" / "build" / "aws"
    assert str(build) in message.replace(" ", "")
    assert (build / "main.tf.json").is_file() and (build / "package.zip").is_file()
