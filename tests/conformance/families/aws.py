"""The AWS providers under the conformance suites, on moto's server (tests/servers/aws.py)."""

from __future__ import annotations

from pathlib import Path

from ..providers import Case


def _dynamodb(tmp: Path, name: str) -> str:
    return f"dynamodb://{name}"


def _s3(tmp: Path, name: str) -> str:
    return f"s3://{name}/some/prefix"


def _sqs(tmp: Path, name: str) -> str:
    return f"sqs://{name}"


def _sns(tmp: Path, name: str) -> str:
    return f"sns://{name}"


def _secretsmanager(tmp: Path, name: str) -> str:
    return f"secretsmanager://{name}"


def _ssm(tmp: Path, name: str) -> str:
    return f"ssm://{name}/app"


def _set_secretsmanager(url: str, name: str, value: str) -> None:
    from overcast.providers.aws.secrets import SecretsManagerSecretStore

    SecretsManagerSecretStore(url).put(name, value)


def _set_ssm(url: str, name: str, value: str) -> None:
    from overcast.providers.aws.secrets import SSMSecretStore

    SSMSecretStore(url).put(name, value)


CASES: list[Case] = [
    Case("kv", "dynamodb", _dynamodb, server="moto_server", title="DynamoDB"),
    Case("bucket", "s3", _s3, server="moto_server", title="S3"),
    Case("queue", "sqs", _sqs, server="moto_server", title="SQS"),
    Case("topic", "sns", _sns, server="moto_server", title="SNS"),
    Case(
        "secret",
        "secretsmanager",
        _secretsmanager,
        server="moto_server",
        set_secret=_set_secretsmanager,
        title="SecretsManager",
    ),
    Case("secret", "ssm", _ssm, server="moto_server", set_secret=_set_ssm, title="SSM"),
]
