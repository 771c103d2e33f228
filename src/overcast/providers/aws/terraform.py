"""A deployment on AWS as Terraform JSON: one Lambda function and what the app declares.

``RENDERER`` is the family's ``deploy`` entry (see :mod:`overcast.deploy.plan`). Names
come from the providers themselves (a queue's ``QUEUE-dlq``, a topic subscription's
queue), so what the plan creates is what the runtime and ``overcast provision`` use.
The function's IAM policy is computed from each resource's declared access
(:func:`policy`): exact actions on exact ARNs, never a wildcard action.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...resources.registry import family_of_scheme

if TYPE_CHECKING:
    from ...deploy.model import Deployment, Resource
    from ...deploy.package import Package

__all__ = ["ACTIONS", "RENDERER", "TerraformRenderer", "policy"]

ACCOUNT = "${data.aws_caller_identity.current.account_id}"
REGION = "${var.region}"
RUNTIMES = ("python3.12", "python3.13")
ARCHITECTURES = ("arm64", "x86_64")
HTTP_MODES = ("url", "api", "none")
HANDLER_MODULE = "overcast_handler"

#: IAM actions per kind and declared access: exactly the calls the providers make
ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("kv", "read"): ("dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"),
    ("kv", "write"): ("dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem"),
    ("bucket", "read"): ("s3:GetObject",),
    ("bucket", "list"): ("s3:ListBucket",),
    ("bucket", "write"): ("s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject"),
    ("queue", "read"): (
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ),
    ("queue", "write"): ("sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"),
    ("topic", "write"): ("sns:GetTopicAttributes", "sns:Publish"),
    ("secretsmanager", "read"): ("secretsmanager:GetSecretValue",),
    ("ssm", "read"): ("ssm:GetParameter",),
    ("logs", "write"): ("logs:CreateLogStream", "logs:PutLogEvents"),
}

#: checkov checks that do not fit a serverless app by default, per resource type, with the
#: reason written next to each such resource (a ``//`` comment); docs/deploy.md lists them
SUPPRESSIONS: dict[str, dict[str, str]] = {
    "aws_lambda_function": {
        "CKV_AWS_117": "it calls AWS APIs at their public endpoints; a VPC needs NAT or endpoints, an account's choice",
        "CKV_AWS_272": "the package is reproducible, pinned by source_code_hash; code signing needs a signing profile",
        "CKV_AWS_173": "its environment holds no secrets; Lambda encrypts it with an AWS managed key",
        "CKV_AWS_50": "telemetry goes through OpenTelemetry; X-Ray adds cost and an xray grant on every resource",
        "CKV_AWS_115": "no reserved concurrency unless the target sets function.concurrency (taken from the account)",
    },
    "aws_cloudwatch_log_group": {
        "CKV_AWS_158": "CloudWatch Logs encrypts log data at rest; a customer managed key is an account's choice",
        "CKV_AWS_338": "logs are kept log_retention_days (30 by default) for cost; 365 or more passes",
    },
    "aws_dynamodb_table": {
        "CKV_AWS_119": "encrypted at rest with the AWS owned key; a customer managed key is an account's choice",
    },
    "aws_secretsmanager_secret": {
        "CKV_AWS_149": "encrypted with the AWS managed key; a customer managed key is an account's choice",
        "CKV2_AWS_57": "its value is set outside the plan; rotation needs a rotation function for that secret",
    },
    "aws_ssm_parameter": {
        "CKV_AWS_337": "a SecureString under the AWS managed key aws/ssm; a customer managed key is an account's",
    },
    "aws_s3_bucket": {
        "CKV_AWS_18": "server access logs need a second bucket; CloudTrail data events are the account's choice",
        "CKV_AWS_144": "cross-region replication doubles the storage; Overcast replicates across providers itself",
        "CKV2_AWS_61": "objects are the app's data, kept until the app deletes them",
        "CKV_AWS_145": "encrypted with SSE-S3 (AES256); SSE-KMS adds a KMS request per object request",
    },
    "aws_apigatewayv2_route": {
        "CKV_AWS_309": "the HTTP API is the app's public entry; the app authenticates its requests itself",
    },
    "aws_apigatewayv2_stage": {
        "CKV_AWS_76": "the function logs every request it serves to its own log group",
    },
    "aws_lambda_function_url": {
        "CKV_AWS_258": "the function URL is the app's public entry; the app authenticates its requests itself",
    },
    "aws_lambda_permission.function_url": {
        "CKV_AWS_301": "anyone may call the function URL, as an HTTP API's callers; the app authenticates them",
    },
}
#: checkov's CKV2_AWS_62 (event notifications), where a bucket has no @app.on handler
NO_NOTIFICATIONS = "CKV2_AWS_62: the bucket notifies the function only when the app declares @app.on(bucket)"

#: an outside event source named by its exact ARN in @app.on(...): what Lambda polls it with
_SOURCES = {
    "dynamodb": (
        re.compile(r"^arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]+/stream/[^*?\[\]]+$"),
        ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"),
    ),
    "kinesis": (
        re.compile(r"^arn:aws:kinesis:[a-z0-9-]+:\d{12}:stream/[A-Za-z0-9_.-]+$"),
        (
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
        ),
    ),
    "sqs": (
        re.compile(r"^arn:aws:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,75}(\.fifo)?$"),
        ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"),
    ),
}


def outside_source(pattern: str) -> str | None:
    """The service of an ``@app.on`` source named by an exact ARN Lambda can poll, else None."""
    for service, (shape, _) in _SOURCES.items():
        if shape.match(pattern):
            return service
    return None


_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_RULE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SECRET_NAME = re.compile(r"^(?!.*//)[A-Za-z0-9/_+=.@-]{1,512}$")
_PARAMETER_NAME = re.compile(r"^(?!.*//)[A-Za-z0-9/_.-]{1,1011}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_LABEL = re.compile(r"[^A-Za-z0-9_]")
_RATE_UNITS = ("minute", "minutes", "hour", "hours", "day", "days")


def _label(*parts: str) -> str:
    return "_".join(_LABEL.sub("_", p) for p in parts)


def _ref(kind: str, label: str, attribute: str) -> str:
    return f"${{{kind}.{label}.{attribute}}}"


class _Names:
    """The AWS names each resource resolves to, checked once, from the providers' own classes."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.queues: dict[str, Any] = {}  # resource name -> SQSQueue
        self.topics: dict[str, Any] = {}
        self.subscription_queues: dict[str, Any] = {}  # subscription name -> SQS queue of a topic
        self.tables: dict[str, str] = {}
        self.buckets: dict[str, tuple[str, str]] = {}  # name -> (bucket, key prefix)
        self.secrets: dict[str, tuple[str, str]] = {}  # name -> (service, secret id)
        self.external: list[str] = []  # resources reached at their URL, not on AWS
        for resource in deployment.resources:
            self._add(resource)
        for sub in deployment.subscriptions:
            if sub.source.kind == "topic":
                self.subscription_queues[sub.name] = self.topics[sub.source.name].subscription(
                    sub.name, max_attempts=sub.max_attempts
                )
        self._check_clashes()

    def _add(self, resource: Resource) -> None:
        url, where = resource.url, f"{resource.kind} {resource.name!r} ({resource.url})"
        if url.scheme == "replicated":
            self._add_replicated(resource)
            return
        family = family_of_scheme(url.scheme)
        if family is None or family.cloud != "aws":
            self._not_aws(resource, family.name if family else None, family.cloud if family else None)
            return
        provider = _open(resource)
        if resource.kind == "kv":
            if provider.table != provider.table_name and not resource.existing:  # ?account=: named by its ARN
                arn = f"arn:aws:dynamodb:REGION:{url.option('account')}:table/{provider.table_name}"
                raise ConfigError(
                    f"{where}: the plan does not create a table of another account (the option account); "
                    f'declare it existing, by its ARN: kv.{resource.name} = {{ arn = "{arn}", existing = true }}'
                )
            self.tables[resource.name] = provider.table_name
        elif resource.kind == "bucket":
            if not _BUCKET_NAME.match(provider.bucket) or ".." in provider.bucket:
                raise ConfigError(
                    f"{where}: S3 bucket name {provider.bucket!r} must be 3-63 lowercase letters, digits, "
                    "'.' or '-', starting and ending with a letter or digit"
                )
            self.buckets[resource.name] = (provider.bucket, provider.prefix)
        elif resource.kind == "queue":
            self.queues[resource.name] = provider
        elif resource.kind == "topic":
            self.topics[resource.name] = provider
        elif resource.kind == "secret":
            secret_id = provider.secret_id(resource.name)
            _check_secret_name(where, url.scheme, secret_id)
            self.secrets[resource.name] = (url.scheme, secret_id)
        else:
            raise ConfigError(f"{where}: AWS has no {resource.kind} this plan can create; use another provider")

    def _add_replicated(self, resource: Resource) -> None:
        """A replicated resource's AWS members are planned (table or bucket, and the function's
        access to it); members on other clouds are theirs to create (the multi-cloud plan)."""
        from dataclasses import replace

        from ...resilience.spec import ReplicaSpec

        members = ReplicaSpec.from_url(resource.url).members
        aws = [m for m in members if (f := family_of_scheme(m.scheme)) is not None and f.cloud == "aws"]
        if len(aws) > 1:
            raise ConfigError(
                f"{resource.kind} {resource.name!r}: {len(aws)} AWS members ({', '.join(map(str, aws))}); "
                "a plan creates one per replicated resource"
            )
        if aws:
            self._add(replace(resource, url=aws[0]))
        else:
            self.external.append(resource.name)

    def _not_aws(self, resource: Resource, family: str | None, cloud: str | None) -> None:
        where = f"{resource.kind} {resource.name!r} ({resource.url})"
        if cloud is not None and not resource.existing:
            raise ConfigError(
                f"{where}: the scheme {resource.url.scheme!r} is a {cloud} provider, not an AWS one; use an AWS "
                f"provider, or if it lives on {cloud} already declare it existing: "
                f'{resource.kind}.{resource.name} = {{ url = "{resource.url}", existing = true }}'
            )
        if family == "local" and resource.url.scheme not in ("memory", "env"):
            raise ConfigError(
                f"{where}: an embedded provider on Lambda keeps its data in the function's /tmp, lost on "
                "every cold start; use an AWS provider (or memory:// for a per-instance cache)"
            )
        self.external.append(resource.name)

    def _check_clashes(self) -> None:
        seen: dict[str, str] = {async_dead_letters(self.deployment): "the function's own dead letters"}
        queues = [(f"queue {n!r}", q) for n, q in self.queues.items()]
        queues += [(f"subscription {n!r}", q) for n, q in self.subscription_queues.items()]
        for who, queue in queues:
            for name in (queue.queue_name, queue.dead_letter_name):
                if name in seen:
                    raise ConfigError(f"{who} and {seen[name]} both use the SQS queue {name!r}; rename one")
                seen[name] = who
        buckets: dict[str, str] = {}
        for name, (bucket, _) in self.buckets.items():
            if bucket in buckets:
                raise ConfigError(f"buckets {buckets[bucket]!r} and {name!r} both use the S3 bucket {bucket!r}")
            buckets[bucket] = name


def _check_secret_name(where: str, scheme: str, secret_id: str) -> None:
    """Secrets Manager's and SSM Parameter Store's rules for a name."""
    if scheme == "ssm":
        top = secret_id.lstrip("/").split("/", 1)[0].lower()
        if not _PARAMETER_NAME.match(secret_id) or top.startswith(("aws", "ssm")) or secret_id.count("/") > 15:
            raise ConfigError(
                f"{where}: SSM parameter name {secret_id!r} must be 1-1011 letters, digits or _.-/ in at most 15 "
                "levels, not starting with 'aws' or 'ssm'"
            )
    elif not _SECRET_NAME.match(secret_id):
        raise ConfigError(
            f"{where}: {scheme} name {secret_id!r} must be 1-512 letters, digits or /_+=.@- (and no '//')"
        )


def async_dead_letters(deployment: Deployment) -> str:
    """The SQS queue where Lambda puts an asynchronous event (a schedule's, a bucket's) that
    failed every retry."""
    return f"{deployment.function.name}-async-dlq"


def _open(resource: Resource) -> Any:
    """The provider class behind ``resource`` (it checks names; no client is made)."""
    from ...resources.registry import resolve

    cls = resolve(resource.kind, resource.url.scheme, resource=resource.name)
    try:
        return cls(resource.url, name=resource.name)
    except ConfigError as exc:
        raise ConfigError(f"{resource.kind} {resource.name!r}: {exc}") from exc


# -- least privilege -------------------------------------------------------------------------


def _region(resource: Resource, region: str) -> str:
    return resource.url.option("region") or region


def _statement(sid: str, actions: set[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": _LABEL.sub("", sid.title()), "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def _queue_arn(queue: Any, region: str, account: str) -> str:
    return f"arn:aws:sqs:{queue.location.option('region') or region}:{account}:{queue.queue_name}"


def _resource_statements(
    resource: Resource, names: _Names, account: str, region: str, consumed: bool
) -> list[dict[str, Any]]:
    kind, name, where = resource.kind, resource.name, _region(resource, region)
    allow = set(resource.allow)
    out: list[dict[str, Any]] = []
    if kind == "kv" and name in names.tables:
        arn = resource.arn or f"arn:aws:dynamodb:{where}:{account}:table/{names.tables[name]}"
        actions = {a for access in sorted(allow & {"read", "write"}) for a in ACTIONS[(kind, access)]}
        if actions:
            out.append(_statement(f"kv {name}", actions, [arn]))
    elif kind == "bucket" and name in names.buckets:
        bucket, prefix = names.buckets[name]
        bucket_arn = resource.arn or f"arn:aws:s3:::{bucket}"
        objects = {a for access in sorted(allow & {"read", "write"}) for a in ACTIONS[(kind, access)]}
        if objects:
            out.append(_statement(f"bucket {name} objects", objects, [f"{bucket_arn}/{prefix}*"]))
        if "read" in allow:
            listing = _statement(f"bucket {name} list", set(ACTIONS[("bucket", "list")]), [bucket_arn])
            out.append(listing)
    elif kind == "queue" and name in names.queues:
        access = allow | ({"read"} if consumed else set())
        actions = {a for level in sorted(access & {"read", "write"}) for a in ACTIONS[(kind, level)]}
        if actions:
            arn = resource.arn or _queue_arn(names.queues[name], where, account)
            out.append(_statement(f"queue {name}", actions, [arn]))
        if resource.writes_dead_letters:  # a backlog's replayer dead-letters an item itself
            queue = names.queues[name]
            dlq = f"arn:aws:sqs:{queue.location.option('region') or where}:{account}:{queue.dead_letter_name}"
            out.append(_statement(f"queue {name} dead letters", {"sqs:SendMessage"}, [dlq]))
    elif kind == "topic" and name in names.topics and "write" in allow:
        arn = resource.arn or f"arn:aws:sns:{where}:{account}:{names.topics[name].topic_name}"
        out.append(_statement(f"topic {name}", set(ACTIONS[("topic", "write")]), [arn]))
    elif kind == "secret" and name in names.secrets:
        service, secret_id = names.secrets[name]
        if service == "ssm":
            arn = f"arn:aws:ssm:{where}:{account}:parameter/{secret_id.lstrip('/')}"
        else:
            arn = f"arn:aws:secretsmanager:{where}:{account}:secret:{secret_id}-??????"
        out.append(_statement(f"secret {name}", set(ACTIONS[(service, "read")]), [arn]))
    return out


def policy(deployment: Deployment, *, account: str = ACCOUNT, region: str = REGION) -> dict[str, Any]:
    """The function's IAM policy: per resource, the actions its declared access needs on its ARN;
    a subscription's queue may be received from and deleted from; logs go to its log group."""
    names = _Names(deployment)
    consumed = {s.source.name for s in deployment.subscriptions if s.source.kind == "queue"}
    statements: list[dict[str, Any]] = []
    for resource in deployment.resources:
        statements += _resource_statements(resource, names, account, region, resource.name in consumed)
    for number, pattern in enumerate(deployment.routes):
        service = outside_source(pattern)
        if service is not None:
            statements.append(_statement(f"source {number} {service}", set(_SOURCES[service][1]), [pattern]))
    if names.subscription_queues:
        arns = [_queue_arn(q, region, account) for _, q in sorted(names.subscription_queues.items())]
        statements.append(_statement("subscription queues", set(ACTIONS[("queue", "read")]), arns))
    dead_letters = f"arn:aws:sqs:{region}:{account}:{async_dead_letters(deployment)}"
    statements.append(_statement("async dead letters", {"sqs:SendMessage"}, [dead_letters]))
    group = f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{deployment.function.name}"
    statements.append(_statement("logs", set(ACTIONS[("logs", "write")]), [f"{group}:*"]))
    return {"Version": "2012-10-17", "Statement": statements}


# -- rendering ---------------------------------------------------------------------------------


class _Doc:
    """A Terraform JSON document being built: resources by type and label, outputs, comments."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Any] = {}

    def add(self, kind: str, label: str, body: dict[str, Any]) -> str:
        table = self.resources.setdefault(kind, {})
        if label in table:
            raise ConfigError(f"two resources would be {kind}.{label}: rename one of the app's resources")
        table[label] = body
        return label


def _check_function(deployment: Deployment) -> None:
    fn = deployment.function
    where = f"[targets.{deployment.target}.function]"
    if not _FUNCTION_NAME.match(fn.name):
        raise ConfigError(f"{where} name {fn.name!r}: a Lambda function name is 1-64 letters, digits, '-' or '_'")
    checks = (
        ("runtime", fn.runtime, RUNTIMES),
        ("architecture", fn.architecture, ARCHITECTURES),
        ("http", fn.http, HTTP_MODES),
    )
    for key, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(f"{where} {key} {value!r}: Lambda takes {', '.join(allowed)}")
    if not 128 <= fn.memory <= 10240:
        raise ConfigError(f"{where} memory {fn.memory}: Lambda takes 128-10240 MB")
    if not 1 <= fn.timeout <= 900:
        raise ConfigError(f"{where} timeout {fn.timeout}: Lambda takes 1-900 seconds")
    if fn.log_retention_days not in _RETENTIONS:
        raise ConfigError(
            f"{where} log_retention_days {fn.log_retention_days}: CloudWatch takes one of "
            f"{', '.join(map(str, _RETENTIONS))}"
        )


_RETENTIONS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


def _core(doc: _Doc, deployment: Deployment, package: Package, names: _Names) -> None:
    fn = deployment.function
    assume = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    doc.add("aws_iam_role", "function", {"name": fn.name, "assume_role_policy": json.dumps(assume, sort_keys=True)})
    doc.add(
        "aws_iam_role_policy",
        "function",
        {
            "name": "least-privilege",
            "role": _ref("aws_iam_role", "function", "id"),
            "policy": json.dumps(policy(deployment)),
        },
    )
    doc.add(
        "aws_cloudwatch_log_group",
        "function",
        {"name": f"/aws/lambda/{fn.name}", "retention_in_days": fn.log_retention_days},
    )
    body: dict[str, Any] = {
        "function_name": fn.name,
        "role": _ref("aws_iam_role", "function", "arn"),
        "handler": f"{HANDLER_MODULE}.handler",
        "runtime": fn.runtime,
        "architectures": [fn.architecture],
        "memory_size": fn.memory,
        "timeout": fn.timeout,
        "filename": "${path.module}/package.zip",
        "source_code_hash": package.sha256_base64,
        "environment": {"variables": {**fn.environment, "OVERCAST_TARGET": deployment.target}},
        "logging_config": {"log_format": "Text", "log_group": _ref("aws_cloudwatch_log_group", "function", "name")},
        "depends_on": ["aws_cloudwatch_log_group.function", "aws_iam_role_policy.function"],
    }
    if fn.concurrency is not None:
        body["reserved_concurrent_executions"] = fn.concurrency
    retained = {"message_retention_seconds": 1209600, "sqs_managed_sse_enabled": True}
    doc.add("aws_sqs_queue", "function_async_dlq", {"name": async_dead_letters(deployment), **retained})
    body["dead_letter_config"] = {"target_arn": _ref("aws_sqs_queue", "function_async_dlq", "arn")}
    doc.add("aws_lambda_function", "function", body)
    doc.outputs["function_name"] = {"value": _ref("aws_lambda_function", "function", "function_name")}
    doc.outputs["role_arn"] = {"value": _ref("aws_iam_role", "function", "arn")}


def _http(doc: _Doc, deployment: Deployment) -> None:
    mode = deployment.function.http if deployment.http else "none"
    function = _ref("aws_lambda_function", "function", "function_name")
    if mode == "url":
        doc.add("aws_lambda_function_url", "function", {"function_name": function, "authorization_type": "NONE"})
        doc.add(
            "aws_lambda_permission",
            "function_url",
            {
                "statement_id": "FunctionURLInvoke",
                "action": "lambda:InvokeFunction",
                "function_name": function,
                "principal": "*",
                "invoked_via_function_url": True,
            },
        )
        doc.outputs["url"] = {"value": _ref("aws_lambda_function_url", "function", "function_url")}
    elif mode == "api":
        api = _ref("aws_apigatewayv2_api", "http", "id")
        doc.add("aws_apigatewayv2_api", "http", {"name": deployment.function.name, "protocol_type": "HTTP"})
        doc.add(
            "aws_apigatewayv2_integration",
            "function",
            {
                "api_id": api,
                "integration_type": "AWS_PROXY",
                "integration_uri": _ref("aws_lambda_function", "function", "invoke_arn"),
                "payload_format_version": "2.0",
            },
        )
        target = "integrations/" + _ref("aws_apigatewayv2_integration", "function", "id")
        doc.add("aws_apigatewayv2_route", "default", {"api_id": api, "route_key": "$default", "target": target})
        doc.add("aws_apigatewayv2_stage", "default", {"api_id": api, "name": "$default", "auto_deploy": True})
        doc.add(
            "aws_lambda_permission",
            "http_api",
            {
                "statement_id": "HttpApiInvoke",
                "action": "lambda:InvokeFunction",
                "function_name": function,
                "principal": "apigateway.amazonaws.com",
                "source_arn": _ref("aws_apigatewayv2_api", "http", "execution_arn") + "/*",
            },
        )
        doc.outputs["url"] = {"value": _ref("aws_apigatewayv2_api", "http", "api_endpoint")}


def _table(doc: _Doc, name: str, table: str) -> None:
    """The key schema and TTL attribute :mod:`.dynamodb` uses: ``pk``/``sk`` strings, ``ttl``."""
    label = _label("kv", name)
    if any(body["name"] == table for body in doc.resources.get("aws_dynamodb_table", {}).values()):
        return  # two stores in one table (each its own partition)
    doc.add(
        "aws_dynamodb_table",
        label,
        {
            "name": table,
            "billing_mode": "PAY_PER_REQUEST",
            "hash_key": "pk",
            "range_key": "sk",
            "attribute": [{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}],
            "ttl": {"attribute_name": "ttl", "enabled": True},
            "point_in_time_recovery": {"enabled": True},
            "server_side_encryption": {"enabled": True},
        },
    )


def _bucket(doc: _Doc, name: str, bucket: str) -> None:
    label = _label("bucket", name)
    ref = _ref("aws_s3_bucket", label, "id")
    doc.add("aws_s3_bucket", label, {"bucket": bucket})
    doc.add(
        "aws_s3_bucket_public_access_block",
        label,
        {
            "bucket": ref,
            "block_public_acls": True,
            "block_public_policy": True,
            "ignore_public_acls": True,
            "restrict_public_buckets": True,
        },
    )
    rule = {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}, "bucket_key_enabled": True}
    doc.add("aws_s3_bucket_server_side_encryption_configuration", label, {"bucket": ref, "rule": [rule]})
    doc.add("aws_s3_bucket_versioning", label, {"bucket": ref, "versioning_configuration": {"status": "Enabled"}})
    doc.add(
        "aws_s3_bucket_ownership_controls", label, {"bucket": ref, "rule": {"object_ownership": "BucketOwnerEnforced"}}
    )


def _queue(doc: _Doc, label: str, queue: Any) -> str:
    """A queue and its dead letters, linked by the redrive policy :class:`.sqs.SQSQueue` makes."""
    shared: dict[str, Any] = {"visibility_timeout_seconds": queue.visibility_timeout, "sqs_managed_sse_enabled": True}
    if queue.fifo:
        shared["fifo_queue"] = True
    dlq = _label(label, "dlq")
    doc.add("aws_sqs_queue", dlq, {"name": queue.dead_letter_name, "message_retention_seconds": 1209600, **shared})
    redrive = {"deadLetterTargetArn": _ref("aws_sqs_queue", dlq, "arn"), "maxReceiveCount": queue.max_attempts}
    body = {"name": queue.queue_name, "delay_seconds": queue.delay, "redrive_policy": json.dumps(redrive), **shared}
    if queue.fifo_ids is not None:
        body["content_based_deduplication"] = bool(queue.fifo_ids.content)
    doc.add("aws_sqs_queue", label, body)
    return _ref("aws_sqs_queue", label, "arn")


def _topic(doc: _Doc, name: str, topic: Any) -> None:
    body: dict[str, Any] = {"name": topic.topic_name, "kms_master_key_id": "alias/aws/sns"}
    if topic.fifo_ids is not None:
        body.update(fifo_topic=True, content_based_deduplication=bool(topic.fifo_ids.content))
    doc.add("aws_sns_topic", _label("topic", name), body)


def _storage(doc: _Doc, deployment: Deployment, names: _Names) -> None:
    for resource in deployment.resources:
        if resource.existing or resource.name in names.external:
            continue
        name = resource.name
        if resource.kind == "kv":
            _table(doc, name, names.tables[name])
        elif resource.kind == "bucket":
            _bucket(doc, name, names.buckets[name][0])
        elif resource.kind == "queue":
            _queue(doc, _label("queue", name), names.queues[name])
        elif resource.kind == "topic":
            _topic(doc, name, names.topics[name])
        elif resource.kind == "secret" and names.secrets[name][0] == "secretsmanager":
            # declared only: its value is set outside the plan, never in Terraform's state
            doc.add("aws_secretsmanager_secret", _label("secret", name), {"name": names.secrets[name][1]})
        elif resource.kind == "secret":
            _parameter(doc, name, names.secrets[name][1])


#: what an SSM parameter the plan declares holds until its value is set outside Terraform
PARAMETER_PLACEHOLDER = "unset: aws ssm put-parameter --overwrite --type SecureString --name NAME --value VALUE"


def _parameter(doc: _Doc, name: str, parameter: str) -> None:
    """A ``SecureString`` parameter whose value Terraform writes once, write-only (never in its
    plan or state; Terraform 1.11 or OpenTofu 1.11 and later): a placeholder, replaced outside
    Terraform by the real value."""
    body = {
        "name": parameter,
        "type": "SecureString",
        "value_wo": PARAMETER_PLACEHOLDER.replace("NAME", parameter),
        "value_wo_version": 1,
    }
    doc.add("aws_ssm_parameter", _label("secret", name), body)


def _arn(service: str, region: str, name: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{name}"


def _mapping(doc: _Doc, label: str, queue_arn: str, depends: list[str]) -> None:
    """Lambda polls the queue; a failed record is reported alone (``ReportBatchItemFailures``)."""
    body: dict[str, Any] = {
        "event_source_arn": queue_arn,
        "function_name": _ref("aws_lambda_function", "function", "arn"),
        "batch_size": 10,
        "function_response_types": ["ReportBatchItemFailures"],
        "depends_on": ["aws_iam_role_policy.function", *depends],
    }
    doc.add("aws_lambda_event_source_mapping", label, body)


def _outside_sources(doc: _Doc, deployment: Deployment) -> list[str]:
    """An event source mapping per ``@app.on`` source named by its exact ARN (a DynamoDB or
    Kinesis stream, another's SQS queue); the patterns left, for their owners to wire."""
    left = []
    for number, pattern in enumerate(deployment.routes):
        service = outside_source(pattern)
        if service is None:
            left.append(pattern)
            continue
        label = _label("source", str(number), service)
        _mapping(doc, label, pattern, [])
        if service != "sqs":  # a stream: from new records, a failed one retried 5 times, then skipped
            body = doc.resources["aws_lambda_event_source_mapping"][label]
            body.update(starting_position="LATEST", batch_size=100, maximum_retry_attempts=5)
    return left


def _check_visibility(deployment: Deployment, who: str, queue: Any, url: str = "queue's") -> None:
    timeout = deployment.function.timeout
    if queue.visibility_timeout < timeout:
        raise ConfigError(
            f"{who}: SQS queue {queue.queue_name!r} has visibility_timeout={queue.visibility_timeout}s, below the "
            f"function's timeout of {timeout}s (Lambda refuses the event source); raise it in the {url} URL "
            f"(?visibility_timeout={timeout * 6}) or lower [targets.{deployment.target}.function] timeout"
        )


def _subscriptions(doc: _Doc, deployment: Deployment, names: _Names) -> None:
    from . import sns  # the queue policy create() sets, so the plan and provision agree

    for sub in deployment.subscriptions:
        source = sub.source
        if source.kind == "queue":
            queue = names.queues[source.name]
            _check_visibility(deployment, f"subscription {sub.name!r}", queue)
            label = _label("queue", source.name)
            if source.existing:
                arn = source.arn or _arn("sqs", _region(source, REGION), queue.queue_name)
            else:
                arn = _ref("aws_sqs_queue", label, "arn")
            _mapping(doc, label, arn, [])
            continue
        queue = names.subscription_queues[sub.name]
        _check_visibility(deployment, f"subscription {sub.name!r}", queue, "topic's")
        topic = names.topics[source.name]
        topic_arn = (
            (source.arn or _arn("sns", _region(source, REGION), topic.topic_name))
            if source.existing
            else _ref("aws_sns_topic", _label("topic", source.name), "arn")
        )
        label = _label("subscription", source.name, sub.name)
        queue_arn = _queue(doc, label, queue)
        allow_topic = sns.subscription_queue_policy(queue_arn, topic_arn)
        queue_url = _ref("aws_sqs_queue", label, "id")
        doc.add("aws_sqs_queue_policy", label, {"queue_url": queue_url, "policy": json.dumps(allow_topic)})
        body = {"topic_arn": topic_arn, "protocol": "sqs", "endpoint": queue_arn}
        doc.add("aws_sns_topic_subscription", label, body)
        _mapping(doc, label, queue_arn, [f"aws_sqs_queue_policy.{label}"])


def _schedule_expression(deployment: Deployment, name: str, expression: str) -> str:
    match = re.fullmatch(r"rate\((\d+) (\w+)\)", expression.strip())
    if match and match.group(2) not in _RATE_UNITS:
        raise ConfigError(f"schedule {name!r} {expression!r}: EventBridge rates are in minutes, hours or days")
    return expression.strip()


def _schedules(doc: _Doc, deployment: Deployment) -> None:
    """One EventBridge rule per schedule, named ``FUNCTION-SCHEDULE``: the name the runtime routes by."""
    for job in deployment.schedules:
        rule = f"{deployment.function.name}-{job.name}"
        if not _RULE_NAME.match(rule):
            raise ConfigError(
                f"schedule {job.name!r}: its EventBridge rule {rule!r} is over 64 characters (or not letters, "
                "digits, '.', '-', '_'); shorten the schedule's or the function's name"
            )
        label = _label("schedule", job.name)
        expression = _schedule_expression(deployment, job.name, job.expression)
        doc.add("aws_cloudwatch_event_rule", label, {"name": rule, "schedule_expression": expression})
        target = {"rule": _ref("aws_cloudwatch_event_rule", label, "name"), "target_id": "function"}
        target["arn"] = _ref("aws_lambda_function", "function", "arn")
        doc.add("aws_cloudwatch_event_target", label, target)
        doc.add(
            "aws_lambda_permission",
            label,
            _invoke("events.amazonaws.com", _ref("aws_cloudwatch_event_rule", label, "arn")),
        )


def _invoke(principal: str, source_arn: str) -> dict[str, Any]:
    return {
        "action": "lambda:InvokeFunction",
        "function_name": _ref("aws_lambda_function", "function", "function_name"),
        "principal": principal,
        "source_arn": source_arn,
    }


_S3_EVENTS = {"created": "s3:ObjectCreated:*", "deleted": "s3:ObjectRemoved:*"}


def _bucket_events(doc: _Doc, deployment: Deployment, names: _Names) -> None:
    """One S3 notification per bucket (S3 keeps one configuration), one entry per handler."""
    by_bucket: dict[str, list[Any]] = {}
    for route in deployment.bucket_events:
        if route.bucket.name not in names.buckets:
            raise ConfigError(
                f"event handler {route.name!r}: bucket {route.bucket.name!r} is not on S3 ({route.bucket.url})"
            )
        by_bucket.setdefault(route.bucket.name, []).append(route)
    for name, routes in by_bucket.items():
        bucket = names.buckets[name][0]
        label = _label("bucket", name)
        permission = _invoke("s3.amazonaws.com", f"arn:aws:s3:::{bucket}")
        permission["source_account"] = ACCOUNT
        doc.add("aws_lambda_permission", label, permission)
        entries = []
        for route in routes:
            entry = {
                "id": route.name,
                "lambda_function_arn": _ref("aws_lambda_function", "function", "arn"),
                "events": [_S3_EVENTS[e] for e in route.events],
            }
            if names.buckets[name][1] + route.prefix:
                entry["filter_prefix"] = names.buckets[name][1] + route.prefix
            entries.append(entry)
        ref = bucket if routes[0].bucket.existing else _ref("aws_s3_bucket", label, "id")
        body = {"bucket": ref, "lambda_function": entries, "depends_on": [f"aws_lambda_permission.{label}"]}
        doc.add("aws_s3_bucket_notification", label, body)


def _annotate(doc: _Doc, deployment: Deployment) -> None:
    """Each suppressed checkov check's reason, as a ``//`` comment in the resource it concerns."""
    passing = set()
    if deployment.function.concurrency is not None:
        passing.add("CKV_AWS_115")
    if deployment.function.log_retention_days >= 365:
        passing.add("CKV_AWS_338")
    for where, checks in SUPPRESSIONS.items():
        kind, _, only = where.partition(".")
        reasons = [f"{check}: {why}" for check, why in sorted(checks.items()) if check not in passing]
        for label, body in doc.resources.get(kind, {}).items():
            extra = []
            if kind == "aws_s3_bucket" and label not in doc.resources.get("aws_s3_bucket_notification", {}):
                extra.append(NO_NOTIFICATIONS)
            if reasons and (not only or label == only):
                body["//"] = "checkov " + "; ".join(reasons + extra)


_ENTRY_POINT = """\
\"\"\"Generated by `overcast plan`: the Lambda entry point (handler = {module}.handler).\"\"\"

import os
from pathlib import Path

os.environ.setdefault("OVERCAST_TARGET", {target!r})

from overcast.loader import load_app
from overcast.providers.aws import lambda_handler

handler = lambda_handler(load_app(Path(__file__).resolve().parent))
"""


class TerraformRenderer:
    """The AWS family's ``deploy``: Terraform JSON for the hashicorp/aws provider (6.x)."""

    def entry_point(self, deployment: Deployment) -> dict[str, str]:
        return {f"{HANDLER_MODULE}.py": _ENTRY_POINT.format(module=HANDLER_MODULE, target=deployment.target)}

    def wheel_platform(self, deployment: Deployment) -> tuple[tuple[str, ...], str]:
        """Wheels Lambda's Amazon Linux 2023 (glibc 2.34) runs on the function's architecture."""
        machine = "aarch64" if deployment.function.architecture == "arm64" else "x86_64"
        tags = tuple(f"manylinux_{glibc}_{machine}" for glibc in ("2_17", "2_28", "2_34"))
        return ("manylinux2014_" + machine, *tags), deployment.function.runtime.removeprefix("python")

    def render(self, deployment: Deployment, package: Package) -> dict[str, Any]:
        """``main.tf.json``, ``variables.tf.json`` and ``outputs.tf.json``; a ConfigError on
        anything AWS would reject, before anything is written."""
        _check_function(deployment)
        names = _Names(deployment)
        doc = _Doc()
        _core(doc, deployment, package, names)
        _http(doc, deployment)
        _storage(doc, deployment, names)
        _subscriptions(doc, deployment, names)
        _schedules(doc, deployment)
        _bucket_events(doc, deployment, names)
        unwired = _outside_sources(doc, deployment)
        main = {
            "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": ">= 6.0, < 7.0"}}},
            "provider": {"aws": {"region": REGION}},
            "data": {"aws_caller_identity": {"current": {}}},
            "resource": doc.resources,
        }
        _annotate(doc, deployment)
        region = deployment.region or "us-east-1"
        variables = {"variable": {"region": {"type": "string", "default": region, "description": "AWS region"}}}
        if names.external:
            doc.outputs["not_created"] = {"value": sorted(names.external)}
        if unwired:  # @app.on("pattern"): a source outside the app, wired by its owner
            doc.outputs["outside_sources"] = {"value": unwired}
        return {"main.tf.json": main, "variables.tf.json": variables, "outputs.tf.json": {"output": doc.outputs}}


RENDERER = TerraformRenderer()
