"""Least privilege, proven on moto with IAM enforcement: the plan's policy on a role, the app's
operations with that role's credentials all pass; the same operations where the app
declared nothing (or declared read only) are denied."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iam_moto import enforce, start_moto_iam
from test_deploy_declared import DECLARED

from overcast.deploy.model import build
from overcast.loader import load_app
from overcast.providers.aws.terraform import policy
from servers import Server

HERE = Path(__file__).resolve().parent
SHOP = HERE / "apps" / "shop"
ROOT = HERE.parents[1]
REGION = "eu-west-1"  # the shop target's region
ACCOUNT = "123456789012"  # moto's


@pytest.fixture(scope="module")
def moto_iam() -> Iterator[Server]:
    server = start_moto_iam()
    try:
        yield server
    finally:
        server.stop()


def _client(server: Server, service: str, **credentials: str) -> Any:
    import boto3

    keys = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION, **keys)


def _environment(server: Server, credentials: dict[str, str], region: str = REGION) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OVERCAST_"))}
    env.update(
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        OVERCAST_TARGET="aws",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
        **credentials,
    )
    return env


def _set_up(server: Server) -> None:
    """As an administrator: the app's resources, and others it did not declare."""
    admin = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    subprocess.run(
        [sys.executable, "-m", "overcast", "provision", str(SHOP), "--target", "aws"],
        env=_environment(server, admin),
        check=True,
        capture_output=True,
    )
    _client(server, "secretsmanager").create_secret(Name="shop/payment-key", SecretString="s3cret")
    _client(server, "secretsmanager").create_secret(Name="other/key", SecretString="other")
    _client(server, "dynamodb").create_table(
        TableName="other-table",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = _client(server, "s3")
    s3.create_bucket(Bucket="other-bucket-example", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="other-bucket-example", Key="a", Body=b"x")
    _client(server, "sqs").create_queue(QueueName="other-queue")
    _client(server, "sns").create_topic(Name="other-topic")


def _role_credentials(server: Server, document: dict[str, Any], name: str = "shop") -> dict[str, str]:
    iam = _client(server, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="least-privilege", PolicyDocument=json.dumps(document))
    found = _client(server, "sts").assume_role(RoleArn=role["Arn"], RoleSessionName="function")["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": found["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": found["SecretAccessKey"],
        "AWS_SESSION_TOKEN": found["SessionToken"],
    }


def test_the_planned_policy_allows_the_apps_operations_and_nothing_else(moto_iam: Server) -> None:
    document = policy(build(load_app(SHOP), "aws"), account=ACCOUNT, region=REGION)
    _set_up(moto_iam)
    credentials = _role_credentials(moto_iam, document)
    enforce(moto_iam, True)
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "iam_operations.py"), str(SHOP)],
            env=_environment(moto_iam, credentials),
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        enforce(moto_iam, False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    denied = {name: outcome for name, outcome in results.items() if ".other." in name or "outside" in name}
    denied |= {name: outcome for name, outcome in results.items() if name == "kv.read_only.put"}
    allowed = {name: outcome for name, outcome in results.items() if name not in denied}
    failing = {name: outcome for name, outcome in allowed.items() if outcome != "ok"}
    assert len(allowed) == 20 and not failing, json.dumps(failing, indent=1)
    assert len(denied) == 9
    passing = {name: outcome for name, outcome in denied.items() if not outcome.startswith("PermissionDenied")}
    assert not passing, json.dumps(passing, indent=1)


EXAMPLE = ROOT / "examples" / "users"


def test_the_example_serves_its_users_with_the_planned_role_only(moto_iam: Server) -> None:
    admin = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    subprocess.run(
        [sys.executable, "-m", "overcast", "provision", str(EXAMPLE), "--target", "aws"],
        env=_environment(moto_iam, admin, "us-east-1"),
        check=True,
        capture_output=True,
    )
    document = policy(build(load_app(EXAMPLE), "aws"), account=ACCOUNT, region="us-east-1")
    credentials = _role_credentials(moto_iam, document, "users-demo")
    enforce(moto_iam, True)
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "iam_example.py"), str(EXAMPLE)],
            env=_environment(moto_iam, credentials, "us-east-1"),
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        enforce(moto_iam, False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["create"], report["again"], report["read"]) == (201, 409, 200), done.stderr[-3000:]
    assert report["welcome"] == {"received": 1, "result": {"batchItemFailures": []}}, done.stderr[-3000:]
    assert report["count"] is None
    welcome = _client(moto_iam, "s3").get_object(Bucket="users-demo-welcome", Key="welcome/u1.txt")
    assert welcome["Body"].read().startswith(b"Welcome, Ada!")


def test_allow_and_existing_in_overcast_toml_are_what_the_role_may_do(moto_iam: Server, tmp_path: Path) -> None:
    """The shop with ``allow`` narrowed in overcast.toml and the catalog and the jobs queue named
    by ARN as existing: what toml allows passes, what it leaves out is denied by IAM."""
    admin = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    subprocess.run(
        [sys.executable, "-m", "overcast", "provision", str(SHOP), "--target", "aws"],
        env=_environment(moto_iam, admin),
        check=True,
        capture_output=True,
    )
    folder = tmp_path / "shop"
    shutil.copytree(SHOP, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    toml = folder / "overcast.toml"
    text = toml.read_text()
    for old, new in DECLARED.items():
        text = text.replace(old, new.replace("210987654321", ACCOUNT))
    toml.write_text(text)
    document = policy(build(load_app(folder), "aws"), account=ACCOUNT, region=REGION)
    credentials = _role_credentials(moto_iam, document, "shop-declared")
    enforce(moto_iam, True)
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / "iam_declared.py")],
            env=_environment(moto_iam, credentials) | {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}"},
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        enforce(moto_iam, False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = {
        name: outcome
        for name, outcome in results.items()
        if (outcome == "ok") != name.startswith("allowed.")
        or (name.startswith("denied.") and not outcome.startswith("PermissionDenied"))
    }
    assert len(results) == 11 and not wrong, json.dumps(wrong, indent=1)
