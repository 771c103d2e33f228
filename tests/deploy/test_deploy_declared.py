"""What ``overcast.toml`` declares beside a resource's URL: ``existing`` (by URL or by ARN),
``allow``; and secrets of both kinds declared without their values."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import tf_schema

from overcast.deploy.model import build
from overcast.deploy.plan import make_plan, write_plan
from overcast.errors import ConfigError
from overcast.loader import load_app

HERE = Path(__file__).resolve().parent
SHOP = HERE / "apps" / "shop"

#: the shop app's target with every resource in its table form
DECLARED = {
    'existing = ["kv.catalog"]\n': "",
    'kv.orders = "dynamodb://shop-orders"': 'kv.orders = { url = "dynamodb://shop-orders", allow = ["read"] }',
    'kv.catalog = "dynamodb://legacy-catalog"': (
        'kv.catalog = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/legacy-catalog", existing = true }'
    ),
    'bucket.uploads = "s3://shop-uploads-example/data"': (
        'bucket.uploads = { url = "s3://shop-uploads-example/data", allow = ["write"] }'
    ),
    'queue.jobs = "sqs://shop-jobs?visibility_timeout=180"': (
        'queue.jobs = { arn = "arn:aws:sqs:eu-west-1:210987654321:shop-jobs", existing = true, allow = ["write"] }'
    ),
    'topic.events = "sns://shop-events"': 'topic.events = { url = "sns://shop-events", allow = [] }',
}


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    folder = tmp_path / "shop"
    shutil.copytree(SHOP, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    return folder


def declare(folder: Path, changes: dict[str, str]) -> None:
    toml = folder / "overcast.toml"
    text = toml.read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    toml.write_text(text)


def statements(document: dict[str, Any]) -> dict[str, Any]:
    policy = json.loads(document["resource"]["aws_iam_role_policy"]["function"]["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


def test_existing_by_arn_is_referenced_and_granted_at_that_arn(shop: Path) -> None:
    declare(shop, DECLARED)
    deployment = build(load_app(shop), "aws")
    catalog = next(r for r in deployment.resources if r.name == "catalog")
    assert (catalog.existing, str(catalog.url)) == (
        True,
        "dynamodb://legacy-catalog?region=eu-west-1&account=123456789012",
    )
    document = make_plan(load_app(shop), "aws").documents["main.tf.json"]
    assert tf_schema.validate(document, tf_schema.load("aws")) == []
    resources = document["resource"]
    assert list(resources["aws_dynamodb_table"]) == ["kv_orders"]  # the catalog is not created
    assert "queue_jobs" not in resources["aws_sqs_queue"] and "queue_jobs_dlq" not in resources["aws_sqs_queue"]
    jobs_arn = "arn:aws:sqs:eu-west-1:210987654321:shop-jobs"  # another account's queue, as written
    assert resources["aws_lambda_event_source_mapping"]["queue_jobs"]["event_source_arn"] == jobs_arn
    found = statements(document)
    assert found["KvCatalog"]["Resource"] == ["arn:aws:dynamodb:eu-west-1:123456789012:table/legacy-catalog"]
    assert found["QueueJobs"]["Resource"] == [jobs_arn]


def test_allow_in_overcast_toml_is_the_access_granted(shop: Path) -> None:
    declare(shop, DECLARED)
    found = statements(make_plan(load_app(shop), "aws").documents["main.tf.json"])
    assert found["KvOrders"]["Action"] == [
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
    ]
    assert found["BucketUploadsObjects"]["Action"] == ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"]
    assert "BucketUploadsList" not in found  # no read: no listing
    assert "sqs:SendMessage" in found["QueueJobs"]["Action"]
    assert "sqs:ReceiveMessage" in found["QueueJobs"]["Action"]  # a subscribed queue is always received from
    assert "TopicEvents" not in found  # allow = []: nothing, not even publishing


def test_allow_in_overcast_toml_binds_the_code_on_that_target(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    declare(shop, DECLARED)
    app = load_app(shop)
    monkeypatch.setenv("OVERCAST_TARGET", "aws")
    with pytest.raises(ConfigError, match=r"allow=\['read'\] on target 'aws' \(overcast.toml\) but the code needs"):
        app.resources["orders"].sync.put("o1", {"n": 1})
    with pytest.raises(ConfigError, match=r"allow=\['write'\] on target 'aws' .* needs 'read'"):
        app.resources["uploads"].sync.delete("a.txt")  # delete tells whether the object existed: a read
    monkeypatch.setenv("OVERCAST_TARGET", "local")
    app.reset()
    app.resources["orders"].sync.put("o1", {"n": 1})  # locally the code's allow holds: read and write


def test_a_url_or_an_existing_flag_alone_in_the_table_form(shop: Path) -> None:
    declare(
        shop,
        {
            'existing = ["kv.catalog"]\n': 'defaults.kv = "dynamodb://{app}-{name}"\n',
            'kv.catalog = "dynamodb://legacy-catalog"': "kv.catalog = { existing = true }",
        },
    )
    catalog = next(r for r in build(load_app(shop), "aws").resources if r.name == "catalog")
    assert (catalog.existing, str(catalog.url)) == (True, "dynamodb://shop-catalog")


BAD = [
    (
        '"dynamodb://legacy-catalog"',
        '{ url = "dynamodb://legacy-catalog", allow = ["delete"] }',
        "allow must be a list",
    ),
    ('"dynamodb://legacy-catalog"', '{ url = "dynamodb://legacy-catalog", existing = "yes" }', "existing must be true"),
    ('"dynamodb://legacy-catalog"', '{ uri = "dynamodb://legacy-catalog" }', "did you mean 'url'?"),
    (
        '"dynamodb://legacy-catalog"',
        '{ url = "dynamodb://x", arn = "arn:aws:dynamodb:eu-west-1:1:table/x" }',
        "url (or arn)",
    ),
    (
        '"dynamodb://legacy-catalog"',
        '{ arn = "arn:aws:sqs:eu-west-1:123456789012:q", existing = true }',
        "names a queue, not a kv",
    ),
    (
        '"dynamodb://legacy-catalog"',
        '{ arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/legacy-catalog" }',
        "an arn names a resource that exists; add existing = true",
    ),
    (
        '"dynamodb://legacy-catalog"',
        '{ arn = "arn:aws:dynamodb:eu-west-1:123456789012:table", existing = true }',
        "is no kv identifier an installed family knows",
    ),
    (
        '"dynamodb://legacy-catalog"',
        '{ url = "firestore://catalog" }\ncloud = "aws"',
        "'firestore' is a gcp provider, not an AWS one",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_a_bad_table_form_is_an_error_naming_it(shop: Path, old: str, new: str, message: str) -> None:
    declare(shop, {'existing = ["kv.catalog"]\n': "", old: new})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        write_plan(make_plan(load_app(shop), "aws"))
    assert "catalog" in str(raised.value)
    assert not (shop / ".overcast").exists()


def test_a_firestore_resource_declared_existing_is_left_out(shop: Path) -> None:
    declare(
        shop,
        {
            'existing = ["kv.catalog"]\n': "",
            '"dynamodb://legacy-catalog"': '{ url = "firestore://catalog", existing = true }',
        },
    )
    plan = make_plan(load_app(shop), "aws")
    assert plan.documents["outputs.tf.json"]["output"]["not_created"] == {"value": ["cache", "catalog"]}


def test_secrets_of_both_kinds_are_declared_without_their_values(shop: Path) -> None:
    source = shop / "shop.py"
    source.write_text(source.read_text() + '\nsigning_key = app.secret("signing-key")\n')
    declare(shop, {"[targets.aws.function]": 'secret.signing-key = "ssm://shop/prod"\n\n[targets.aws.function]'})
    plan = make_plan(load_app(shop), "aws")
    main = plan.documents["main.tf.json"]
    assert tf_schema.validate(main, tf_schema.load("aws")) == []
    resources = main["resource"]
    assert resources["aws_secretsmanager_secret"]["secret_payment_key"]["name"] == "shop/payment-key"
    parameter = resources["aws_ssm_parameter"]["secret_signing_key"]
    assert (parameter["name"], parameter["type"]) == ("/shop/prod/signing-key", "SecureString")
    assert "value" not in parameter and parameter["value_wo"].startswith("unset: aws ssm put-parameter")
    assert "aws_secretsmanager_secret_version" not in resources
    found = statements(main)
    assert found["SecretSigningKey"]["Action"] == ["ssm:GetParameter"]
    assert found["SecretSigningKey"]["Resource"] == [
        "arn:aws:ssm:${var.region}:${data.aws_caller_identity.current.account_id}:parameter/shop/prod/signing-key"
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ssm://aws/prod", "SSM parameter name '/aws/prod/signing-key' must be 1-1011 letters"),
        ("ssm://shop/p+q", "SSM parameter name '/shop/p+q/signing-key'"),
    ],
)
def test_an_ssm_parameter_name_aws_refuses_is_an_error(shop: Path, url: str, message: str) -> None:
    source = shop / "shop.py"
    source.write_text(source.read_text() + '\nsigning_key = app.secret("signing-key")\n')
    declare(shop, {"[targets.aws.function]": f'secret.signing-key = "{url}"\n\n[targets.aws.function]'})
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_plan(load_app(shop), "aws")


@pytest.mark.parametrize(
    ("arn", "found"),
    [
        (
            "arn:aws:dynamodb:eu-west-1:123456789012:table/orders",
            ("kv", "dynamodb://orders?region=eu-west-1&account=123456789012"),
        ),
        ("arn:aws:s3:::acme-reports", ("bucket", "s3://acme-reports")),
        (
            "arn:aws:sqs:eu-west-1:123456789012:jobs.fifo",
            ("queue", "sqs://jobs.fifo?region=eu-west-1&account=123456789012"),
        ),
        ("arn:aws:sns:us-east-1:123456789012:events", ("topic", "sns://events?region=us-east-1&account=123456789012")),
        ("arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026", None),  # a stream is an event source
        ("arn:aws:s3:::acme-reports/key", None),  # an object, not a bucket
        ("arn:aws:lambda:eu-west-1:123456789012:function:f", None),
        ("dynamodb://orders", None),
    ],
)
def test_the_aws_family_reads_the_arns_of_tables_buckets_queues_and_topics(arn: str, found: Any) -> None:
    from overcast.providers.aws.arns import url_of_arn

    assert url_of_arn(arn) == found
