"""`overcast plan` on AWS: the Terraform JSON against the provider's schema, what it creates,
determinism, and bad input refused with nothing written."""

from __future__ import annotations

import json
import os
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
EXAMPLE = HERE.parents[1] / "examples" / "users"


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shop app, so each test may edit its overcast.toml."""
    monkeypatch.delenv("OVERCAST_TARGET", raising=False)
    folder = tmp_path / "shop"
    shutil.copytree(SHOP, folder, ignore=shutil.ignore_patterns(".overcast", "__pycache__"))
    return folder


def plan_of(folder: Path, target: str = "aws") -> Any:
    return make_plan(load_app(folder), target)


def main_tf(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = plan_of(folder).documents["main.tf.json"]
    return document


@pytest.mark.parametrize("http", ["url", "api", "none"])
def test_every_type_and_argument_is_in_the_aws_provider_schema(shop: Path, http: str) -> None:
    toml = shop / "overcast.toml"
    toml.write_text(toml.read_text().replace('http = "api"', f'http = "{http}"'))
    schema = tf_schema.load("aws")
    documents = plan_of(shop).documents
    assert tf_schema.validate(documents["main.tf.json"], schema) == []
    example = plan_of(EXAMPLE).documents["main.tf.json"]
    assert tf_schema.validate(example, schema) == []


def test_the_schema_check_finds_what_terraform_would_reject(shop: Path) -> None:
    schema = tf_schema.load("aws")
    document = main_tf(shop)
    table = document["resource"]["aws_dynamodb_table"]["kv_orders"]
    table["read_capacity_units"] = 5  # a typo of read_capacity
    del table["name"]
    table["arn"] = "arn:aws:dynamodb:::table/x"  # computed only
    document["resource"]["aws_lambda_functions"] = {"x": {}}
    errors = tf_schema.validate(document, schema)
    assert any("unknown argument or block 'read_capacity_units'" in e for e in errors)
    assert any("required argument 'name' missing" in e for e in errors)
    assert any(".arn: computed only" in e for e in errors)
    assert any("aws_lambda_functions: unknown type" in e for e in errors)


def test_tables_queues_and_topics_are_what_the_providers_use(shop: Path) -> None:
    resources = main_tf(shop)["resource"]
    table = resources["aws_dynamodb_table"]["kv_orders"]
    assert (table["hash_key"], table["range_key"], table["ttl"]) == (
        "pk",
        "sk",
        {"attribute_name": "ttl", "enabled": True},
    )
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert "kv_catalog" not in resources["aws_dynamodb_table"]  # existing: referenced, not created
    queues = resources["aws_sqs_queue"]
    assert queues["queue_jobs_dlq"]["name"] == "shop-jobs-dlq"
    redrive = json.loads(queues["queue_jobs"]["redrive_policy"])
    assert redrive == {"deadLetterTargetArn": "${aws_sqs_queue.queue_jobs_dlq.arn}", "maxReceiveCount": 3}
    assert queues["queue_jobs"]["visibility_timeout_seconds"] == 180
    assert queues["subscription_events_audit"]["name"] == "shop-events-audit"
    subscription = resources["aws_sns_topic_subscription"]["subscription_events_audit"]
    assert subscription["topic_arn"] == "${aws_sns_topic.topic_events.arn}"
    mappings = resources["aws_lambda_event_source_mapping"]
    assert {m["function_response_types"][0] for m in mappings.values()} == {"ReportBatchItemFailures"}
    assert len(mappings) == 2


def test_buckets_are_private_and_encrypted_and_notify_the_function(shop: Path) -> None:
    resources = main_tf(shop)["resource"]
    assert resources["aws_s3_bucket"]["bucket_uploads"]["bucket"] == "shop-uploads-example"
    block = resources["aws_s3_bucket_public_access_block"]["bucket_uploads"]
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls"))
    sse = resources["aws_s3_bucket_server_side_encryption_configuration"]["bucket_uploads"]["rule"][0]
    assert sse["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256"
    entry = resources["aws_s3_bucket_notification"]["bucket_uploads"]["lambda_function"][0]
    assert entry["filter_prefix"] == "data/incoming/"  # the URL's prefix, then the handler's
    assert entry["events"] == ["s3:ObjectCreated:*"]


def test_schedules_become_rules_the_runtime_routes(shop: Path) -> None:
    resources = main_tf(shop)["resource"]
    rule = resources["aws_cloudwatch_event_rule"]["schedule_nightly"]
    assert rule == {"name": "shop-nightly", "schedule_expression": "cron(0 3 * * ? *)"}
    from overcast.providers.aws.lambda_events import _schedule_for

    app = load_app(shop)
    job = _schedule_for(app.schedules, [rule["name"]], app.name)
    assert job is not None and job.name == "nightly"


def test_the_function_takes_the_target_settings(shop: Path) -> None:
    resources = main_tf(shop)["resource"]
    function = resources["aws_lambda_function"]["function"]
    assert function["architectures"] == ["arm64"] and function["runtime"] == "python3.12"
    assert function["memory_size"] == 1024 and function["timeout"] == 30
    assert function["environment"]["variables"] == {"LOG_LEVEL": "info", "OVERCAST_TARGET": "aws"}
    assert function["handler"] == "overcast_handler.handler"
    assert "aws_apigatewayv2_api" in resources and "aws_lambda_function_url" not in resources


def test_no_statement_grants_a_wildcard_action_or_a_wildcard_resource(shop: Path) -> None:
    for folder in (shop, EXAMPLE):
        document = main_tf(folder)["resource"]["aws_iam_role_policy"]["function"]["policy"]
        for statement in json.loads(document)["Statement"]:
            assert all("*" not in action for action in statement["Action"]), statement
            assert all(resource not in ("*", "arn:aws:*") for resource in statement["Resource"]), statement


def test_a_plan_is_the_same_bytes_every_time(shop: Path, tmp_path: Path) -> None:
    first = write_plan(plan_of(shop), tmp_path / "one")
    second = write_plan(plan_of(shop), tmp_path / "two")
    names = sorted(p.name for p in first.iterdir())
    assert names == ["main.tf.json", "outputs.tf.json", "package.zip", "variables.tf.json"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_plan_writes_into_the_build_folder(shop: Path) -> None:
    folder = write_plan(plan_of(shop))
    assert folder == shop / ".overcast" / "build" / "aws"
    variables = json.loads((folder / "variables.tf.json").read_text())
    assert variables["variable"]["region"]["default"] == "eu-west-1"
    outputs = json.loads((folder / "outputs.tf.json").read_text())
    assert outputs["output"]["url"] == {"value": "${aws_apigatewayv2_api.http.api_endpoint}"}
    assert outputs["output"]["not_created"] == {"value": ["cache"]}
    assert outputs["output"]["outside_sources"] == {"value": ["arn:aws:dynamodb:*:*:table/legacy-catalog/stream/*"]}


def test_declarations_make_the_model(shop: Path) -> None:
    deployment = build(load_app(shop), "aws")
    assert [(r.kind, r.name, r.existing) for r in deployment.resources][:2] == [
        ("kv", "orders", False),
        ("kv", "catalog", True),
    ]
    assert [(s.name, s.source.name, s.max_attempts) for s in deployment.subscriptions] == [
        ("work", "jobs", 3),
        ("audit", "events", 5),
    ]
    assert [(e.name, e.bucket.name, e.events, e.prefix) for e in deployment.bucket_events] == [
        ("on_upload", "uploads", ("created",), "incoming/")
    ]
    assert deployment.routes == ("arn:aws:dynamodb:*:*:table/legacy-catalog/stream/*",)


BAD = [
    ('kv.orders = "dynamodb://shop-orders"', 'kv.orders = "sqlite:///orders.db"', "embedded provider on Lambda"),
    (
        'kv.orders = "dynamodb://shop-orders"',
        'cloud = "aws"\nkv.orders = "firestore://orders"',
        "'firestore' is a gcp provider, not an AWS one",
    ),
    ('"s3://shop-uploads-example/data"', '"s3://Shop_Uploads/data"', "S3 bucket name 'Shop_Uploads'"),
    ("visibility_timeout=180", "visibility_timeout=10", "visibility_timeout=10s, below the function's timeout"),
    ("memory = 1024", 'memory = 1024\nruntime = "python3.9"', "runtime 'python3.9': Lambda takes python3.12"),
    ("memory = 1024", "memory = 64", "memory 64: Lambda takes 128-10240 MB"),
    ("memory = 1024", 'memory = 1024\nname = "' + "f" * 70 + '"', "a Lambda function name is 1-64"),
    ('existing = ["kv.catalog"]', 'existing = ["kv.catalogue"]', "existing names kv.catalogue"),
    ('existing = ["kv.catalog"]', 'existing = ["catalog"]', 'is not "kind.name"'),
    ("memory = 1024", "memroy = 1024", "unknown key 'memroy'"),
    ('"secretsmanager://shop"', '"secretsmanager://shop%20prod"', "secretsmanager name 'shop prod/payment-key'"),
    ('queue.jobs = "sqs://shop-jobs', 'queue.extra = "sqs://shop-jobs"\nqueue.jobs = "sqs://shop-jobs', "both use"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_bad_input_is_an_error_naming_it_and_nothing_is_written(shop: Path, old: str, new: str, message: str) -> None:
    toml = shop / "overcast.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))
    if "queue.extra" in new:
        (shop / "shop.py").write_text((shop / "shop.py").read_text() + '\nextra = app.queue("extra")\n')
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_plan(plan_of(shop))
    assert not (shop / ".overcast").exists()


def test_a_schedule_name_too_long_for_a_rule_is_refused(shop: Path) -> None:
    source = shop / "shop.py"
    source.write_text(
        source.read_text().replace(
            '@app.schedule("cron(0 3 * * ? *)")', '@app.schedule("rate(1 day)", name="' + "n" * 60 + '")'
        )
    )
    with pytest.raises(ConfigError, match=r"its EventBridge rule 'shop-n+' is over 64 characters"):
        plan_of(shop)


def test_a_target_without_a_cloud_has_nothing_to_deploy(shop: Path) -> None:
    with pytest.raises(ConfigError, match="target 'local' runs on no cloud"):
        plan_of(shop, "local")


SNAPSHOT = HERE / "snapshots" / "users-aws.json"


def test_the_example_plan_matches_its_snapshot() -> None:
    """The example's whole plan, its package hash aside (it changes with Overcast's source).
    After an intended change: OVERCAST_UPDATE_SNAPSHOTS=1 pytest tests/deploy -k snapshot."""
    documents = json.loads(json.dumps(plan_of(EXAMPLE).documents))
    function = documents["main.tf.json"]["resource"]["aws_lambda_function"]["function"]
    function["source_code_hash"] = "<base64 sha256 of package.zip>"
    text = json.dumps(documents, indent=2, sort_keys=True) + "\n"
    if os.environ.get("OVERCAST_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()


def test_a_package_over_lambdas_limits_is_warned_about(shop: Path) -> None:
    from overcast.deploy.package import Package
    from overcast.deploy.plan import LAMBDA_ZIP_LIMIT, Plan

    plan = Plan(build(load_app(shop), "aws"), Package(b"\0" * (LAMBDA_ZIP_LIMIT + 1), (), 300 * 2**20), {})
    assert plan.warnings() == [
        "the package is 52.4 MB, above Lambda's 50 MB for a direct upload",
        "the package unzips to 314.6 MB, above Lambda's 250 MB; trim requirements.txt (boto3 is in Lambda's runtime)",
    ]
    assert make_plan(load_app(shop), "aws").warnings() == []


def test_fifo_queues_shared_tables_and_external_providers(shop: Path) -> None:
    source = shop / "shop.py"
    source.write_text(
        source.read_text()
        + '\nsessions = app.kv("sessions")\nticks = app.queue("ticks")\nbus = app.topic("bus")\n'
        + "@app.subscribe(bus)\nasync def fan(event): ...\n"
    )
    toml = shop / "overcast.toml"
    toml.write_text(
        toml.read_text()
        .replace(
            "[targets.aws.function]",
            'kv.sessions = "dynamodb://shop-orders?partition=sessions"\n'
            'queue.ticks = "sqs://shop-ticks.fifo?deduplication=content"\n'
            'topic.bus = "sns://shop-bus.fifo"\n'
            'cache.cache = "redis://cache.internal:6379"\n\n[targets.aws.function]',
        )
        .replace('cache.cache = "memory://cache"\n', "")
    )
    plan = plan_of(shop)
    resources = plan.documents["main.tf.json"]["resource"]
    assert tf_schema.validate(plan.documents["main.tf.json"], tf_schema.load("aws")) == []
    assert list(resources["aws_dynamodb_table"]) == ["kv_orders"]  # one table, two partitions
    queues = resources["aws_sqs_queue"]
    assert queues["queue_ticks"]["fifo_queue"] is True and queues["queue_ticks"]["content_based_deduplication"]
    assert queues["queue_ticks_dlq"]["name"] == "shop-ticks-dlq.fifo"
    assert queues["subscription_bus_fan"]["name"] == "shop-bus-fan.fifo"
    assert resources["aws_sns_topic"]["topic_bus"]["fifo_topic"] is True
    assert plan.documents["outputs.tf.json"]["output"]["not_created"] == {"value": ["cache"]}
    statements = json.loads(resources["aws_iam_role_policy"]["function"]["policy"])["Statement"]
    tables = [s["Resource"] for s in statements if s["Sid"] in ("KvOrders", "KvSessions")]
    assert tables[0] == tables[1]


def test_a_topics_visibility_timeout_reaches_its_subscription_queues(shop: Path) -> None:
    toml = shop / "overcast.toml"
    text = toml.read_text().replace("memory = 1024", "memory = 1024\ntimeout = 120")
    toml.write_text(text)
    with pytest.raises(
        ConfigError, match=r"'shop-events-audit' has visibility_timeout=30s.*raise it in the topic's URL"
    ):
        plan_of(shop)
    toml.write_text(text.replace('"sns://shop-events"', '"sns://shop-events?visibility_timeout=720"'))
    app = load_app(shop)
    app.use_config(toml)  # the same module as above: read the file again
    queue = make_plan(app, "aws").documents["main.tf.json"]["resource"]["aws_sqs_queue"]["subscription_events_audit"]
    assert queue["visibility_timeout_seconds"] == 720


def test_outside_sources_named_by_their_arn_are_polled_with_just_their_grants(shop: Path) -> None:
    stream = "arn:aws:dynamodb:eu-west-1:123456789012:table/legacy-catalog/stream/2026-01-01T00:00:00.000"
    kinesis = "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks"
    queue = "arn:aws:sqs:eu-west-1:123456789012:billing-events"
    source = shop / "shop.py"
    extra = "".join(
        f'\n@app.on("{arn}", name="s{i}")\nasync def s{i}(event): ...\n'
        for i, arn in enumerate([stream, kinesis, queue])
    )
    source.write_text(source.read_text() + extra)
    plan = plan_of(shop)
    document = plan.documents["main.tf.json"]
    assert tf_schema.validate(document, tf_schema.load("aws")) == []
    mappings = document["resource"]["aws_lambda_event_source_mapping"]
    assert mappings["source_1_dynamodb"]["event_source_arn"] == stream
    assert mappings["source_1_dynamodb"]["starting_position"] == "LATEST"
    assert mappings["source_2_kinesis"]["function_response_types"] == ["ReportBatchItemFailures"]
    assert "starting_position" not in mappings["source_3_sqs"]
    statements = {
        s["Sid"]: s for s in json.loads(document["resource"]["aws_iam_role_policy"]["function"]["policy"])["Statement"]
    }
    assert statements["Source1Dynamodb"]["Resource"] == [stream]
    assert "dynamodb:GetRecords" in statements["Source1Dynamodb"]["Action"]
    assert statements["Source3Sqs"]["Action"] == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    # the wildcard pattern of the shop app stays for its owner to wire
    assert plan.documents["outputs.tf.json"]["output"]["outside_sources"] == {
        "value": ["arn:aws:dynamodb:*:*:table/legacy-catalog/stream/*"]
    }


def test_a_replicated_resource_plans_its_aws_member_and_grants_it(shop: Path) -> None:
    source = shop / "shop.py"
    source.write_text(source.read_text() + '\nprofiles = app.kv("profiles")\nsnapshots = app.kv("snapshots")\n')
    toml = shop / "overcast.toml"
    toml.write_text(
        toml.read_text().replace(
            "[targets.aws.function]",
            'kv.profiles = { primary = "dynamodb://shop-profiles", replicas = ["firestore://profiles"] }\n'
            'kv.snapshots = { primary = "firestore://snaps", replicas = ["postgresql://db.internal:5432/app"] }\n\n'
            "[targets.aws.function]",
        )
    )
    plan = plan_of(shop)
    resources = plan.documents["main.tf.json"]["resource"]
    assert tf_schema.validate(plan.documents["main.tf.json"], tf_schema.load("aws")) == []
    assert resources["aws_dynamodb_table"]["kv_profiles"]["name"] == "shop-profiles"
    statements = json.loads(resources["aws_iam_role_policy"]["function"]["policy"])["Statement"]
    profiles = next(s for s in statements if s["Sid"] == "KvProfiles")
    assert profiles["Resource"][0].endswith(":table/shop-profiles") and "dynamodb:PutItem" in profiles["Action"]
    assert "snapshots" in plan.documents["outputs.tf.json"]["output"]["not_created"]["value"]  # no AWS member
    # the change logs ship every minute where no process stays up
    rule = resources["aws_cloudwatch_event_rule"]["schedule_overcast_replicate"]
    assert rule["schedule_expression"] == "rate(1 minute)" and "schedule_overcast_replicate" in resources[
        "aws_lambda_permission"
    ]


def test_a_target_without_replication_plans_no_replication_schedule(shop: Path) -> None:
    """The replication schedule is declared because another target replicates; this one does not."""
    source = shop / "shop.py"
    source.write_text(source.read_text() + '\nprofiles = app.kv("profiles")\n')
    toml = shop / "overcast.toml"
    text = toml.read_text().replace("[targets.aws.function]", 'kv.profiles = "dynamodb://shop-profiles"\n\n[targets.aws.function]')
    multi = '[targets.multi]\nkv.profiles = { primary = "sqlite:///a.db", replicas = ["sqlite:///b.db"] }\n'
    toml.write_text(text + "\n" + multi)
    resources = plan_of(shop).documents["main.tf.json"]["resource"]
    assert "schedule_overcast_replicate" not in resources.get("aws_cloudwatch_event_rule", {})


def test_a_replicated_resource_with_two_aws_members_is_refused(shop: Path) -> None:
    source = shop / "shop.py"
    source.write_text(source.read_text() + '\nprofiles = app.kv("profiles")\n')
    toml = shop / "overcast.toml"
    toml.write_text(
        toml.read_text().replace(
            "[targets.aws.function]",
            'kv.profiles = { primary = "dynamodb://a", replicas = ["dynamodb://b?region=eu-west-1"] }\n\n'
            "[targets.aws.function]",
        )
    )
    with pytest.raises(ConfigError, match="2 AWS members"):
        plan_of(shop)
