"""checkov on the AWS plans, offline: no failed check. A check that does not fit a serverless
app is suppressed by the reason the plan writes next to the resource (a ``//`` comment,
which checkov does not read), turned here into checkov's baseline; docs/deploy.md lists
every one.

checkov pins packages older than the project's (boto3 among them), so it gets a virtual
environment of its own, made once (from PyPI, like the test servers' packages) and kept in
``~/.cache/overcast-tests``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from overcast.deploy.plan import make_plan, write_plan
from overcast.loader import load_app
from overcast.providers.aws.terraform import NO_NOTIFICATIONS, SUPPRESSIONS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHECKOV = "checkov==3.3.30"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overcast-tests" / CHECKOV.replace("==", "-")


@pytest.fixture(scope="module")
def checkov() -> Path:
    """checkov's executable, installed into its own virtual environment on first use."""
    program = CACHE / "bin" / "checkov"
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f"{CACHE.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not program.exists():
            shutil.rmtree(CACHE, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(CACHE)], check=True)
            subprocess.run(
                [str(CACHE / "bin" / "python"), "-m", "pip", "install", "--quiet", CHECKOV],
                check=True,
                timeout=900,
            )
    return program


def baseline(document: dict[str, Any]) -> dict[str, Any]:
    """checkov's baseline from the plan's ``//`` comments (checkov names a resource of a
    ``.tf.json`` either ``TYPE.LABEL`` or ``resource.LABEL``)."""
    findings: dict[str, set[str]] = {}
    for kind, labelled in document["resource"].items():
        for label, body in labelled.items():
            comment = body.get("//", "")
            if not comment.startswith("checkov "):
                continue
            checks = {part.split(":", 1)[0].strip() for part in comment.removeprefix("checkov ").split("; ")}
            for name in (f"{kind}.{label}", f"resource.{label}"):
                findings.setdefault(name, set()).update(checks)
    entries = [{"resource": name, "check_ids": sorted(ids)} for name, ids in sorted(findings.items())]
    return {"failed_checks": [{"file": "/main.tf.json", "findings": entries}]}


def run(checkov: Path, build: Path, baseline: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(checkov), "-d", str(build), "--framework", "terraform_json", "--skip-download", "-o", "json"]
    if baseline is not None:
        command += ["--baseline", str(baseline)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def declared_shop(folder: Path) -> Path:
    """The shop with overcast.toml's table forms (existing by ARN, allow) and an SSM secret."""
    from test_deploy_declared import DECLARED

    shutil.copytree(HERE / "apps" / "shop", folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    text = (folder / "overcast.toml").read_text()
    for old, new in DECLARED.items():
        text = text.replace(old, new)
    text = text.replace("[targets.aws.function]", 'secret.signing-key = "ssm://shop/prod"\n\n[targets.aws.function]')
    (folder / "overcast.toml").write_text(text)
    (folder / "shop.py").write_text((folder / "shop.py").read_text() + '\nsigning_key = app.secret("signing-key")\n')
    return folder


@pytest.mark.parametrize("app", ["shop", "users", "declared"])
def test_checkov_finds_no_failed_check(checkov: Path, app: str, tmp_path: Path) -> None:
    folder = {"shop": HERE / "apps" / "shop", "users": ROOT / "examples" / "users"}.get(app)
    plan = make_plan(load_app(folder or declared_shop(tmp_path / "shop")), "aws")
    build = write_plan(plan, tmp_path / "build")
    (tmp_path / "baseline.json").write_text(json.dumps(baseline(plan.documents["main.tf.json"])))
    done = run(checkov, build, tmp_path / "baseline.json")
    report = json.loads(done.stdout)
    # with a baseline, checkov reports what it adds to it: only a summary when that is nothing
    failed = [(c["check_id"], c["resource"]) for c in report.get("results", {}).get("failed_checks", [])]
    assert failed == [], failed
    summary = report.get("summary", report)
    assert (summary["failed"], summary["parsing_errors"]) == (0, 0)
    assert done.returncode == 0


def test_every_failure_without_the_baseline_is_one_the_plan_explains(checkov: Path, tmp_path: Path) -> None:
    plan = make_plan(load_app(HERE / "apps" / "shop"), "aws")
    build = write_plan(plan, tmp_path / "build")
    report = json.loads(run(checkov, build).stdout)
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    explained = {check for checks in SUPPRESSIONS.values() for check in checks}
    assert failed and failed <= explained, failed - explained
    assert report["summary"]["passed"] >= 40  # the checks really ran on every resource
    fewer = baseline(plan.documents["main.tf.json"])
    for finding in fewer["failed_checks"][0]["findings"]:
        finding["check_ids"] = [c for c in finding["check_ids"] if c != "CKV_AWS_117"]
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    again = run(checkov, build, tmp_path / "fewer.json")
    assert [c["check_id"] for c in json.loads(again.stdout)["results"]["failed_checks"]] == ["CKV_AWS_117"]


def test_docs_list_every_suppression_with_its_reason() -> None:
    page = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    for checks in SUPPRESSIONS.values():
        for check, reason in checks.items():
            assert f"`{check}`: {reason}" in page, check
    check, reason = NO_NOTIFICATIONS.split(": ", 1)
    assert f"`{check}`: {reason}" in page
