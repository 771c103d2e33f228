"""The AWS providers under the conformance suites, on moto's server (tests/servers/aws.py)."""

from __future__ import annotations

from pathlib import Path

from ..providers import Case


def _dynamodb(tmp: Path, name: str) -> str:
    return f"dynamodb://{name}?client=lite"  # the botocore-free client, as on Lambda


def _dynamodb_botocore(tmp: Path, name: str) -> str:
    return f"dynamodb://{name}?client=botocore"


def _s3(tmp: Path, name: str) -> str:
    return f"s3://{name}/some/prefix"


def _sqs(tmp: Path, name: str) -> str:
    return f"sqs://{name}"


def _sqs_fifo(tmp: Path, name: str) -> str:
    # One message group per message: with one group, SQS hands out nothing more while any
    # message of the group is in flight, which test_receive_many (15 received before any
    # ack) cannot allow. The single group's order and lock are tested in test_s3_sqs_sns.py.
    return f"sqs://{name}.fifo?group=*"


def _sns(tmp: Path, name: str) -> str:
    return f"sns://{name}"


def _sns_fifo(tmp: Path, name: str) -> str:
    return f"sns://{name}.fifo"


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
    Case("kv", "dynamodb", _dynamodb_botocore, server="moto_server", title="DynamoDBBotocore"),
    Case("bucket", "s3", _s3, server="moto_server", title="S3"),
    Case("queue", "sqs", _sqs, server="moto_server", title="SQS"),
    Case(
        "queue",
        "sqs",
        _sqs_fifo,
        server="moto_server",
        title="SQSFifo",
        provider="overcast.providers.aws.sqs:SQSFifoQueue",
    ),
    Case("topic", "sns", _sns, server="moto_server", title="SNS"),
    Case(
        "topic",
        "sns",
        _sns_fifo,
        server="moto_server",
        title="SNSFifo",
        provider="overcast.providers.aws.sns:SNSFifoTopic",
    ),
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
