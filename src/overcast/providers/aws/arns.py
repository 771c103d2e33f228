"""An AWS resource named by its ARN in ``overcast.toml`` (``kv.legacy = { arn = "...",
existing = true }``): the provider URL it is reached at, its region kept as an option.

The ARN stays the resource's identity in a plan: the function's policy names it exactly,
so a resource of another account or region is granted as written. The account is kept as
the option ``account`` of a table, queue or topic: the provider reaches a table by its ARN
(DynamoDB takes a table's ARN for ``TableName``, which is how another account's table is
reached through its resource-based policy), a queue through ``GetQueueUrl``'s
``QueueOwnerAWSAccountId``, a topic by its ARN. A bucket's name is global: no account.
"""

from __future__ import annotations

import re

__all__ = ["partition_of", "table_arn", "url_of_arn"]

_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d{12})?:(?P<rest>.+)$"
)


def url_of_arn(arn: str) -> tuple[str, str] | None:
    """``(kind, url)`` of a DynamoDB table's, S3 bucket's, SQS queue's or SNS topic's ARN;
    None when ``arn`` is not one of those."""
    match = _ARN.match(arn)
    if match is None:
        return None
    service, region, account, rest = match["service"], match["region"], match["account"] or "", match["rest"]
    options = [f"region={region}"] if region else []
    if account and service in ("sqs", "sns", "dynamodb"):  # each is addressed through the owning account
        options.append(f"account={account}")
    query = ("?" + "&".join(options)) if options else ""
    found: tuple[str, str] | None = None
    if service == "dynamodb" and rest.startswith("table/") and "/" not in rest[6:]:
        found = ("kv", f"dynamodb://{rest[6:]}")
    elif service == "s3" and not region and not account and "/" not in rest:
        found = ("bucket", f"s3://{rest}")
    elif service in ("sqs", "sns") and "/" not in rest and ":" not in rest:
        found = ("queue" if service == "sqs" else "topic", f"{service}://{rest}")
    if found is None:
        return None
    return found[0], found[1] + (query if found[0] != "bucket" else "")


_ACCOUNT = re.compile(r"^\d{12}$")


def partition_of(region: str) -> str:
    """The AWS partition of ``region``: ``aws-cn`` for China, ``aws-us-gov`` for GovCloud, else ``aws``."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def table_arn(region: str, account: str, table: str) -> str:
    """The ARN of the DynamoDB table ``table`` of ``account`` in ``region``: what the provider
    sends as ``TableName`` for a table of another account (DynamoDB's table-name overloading)."""
    if not _ACCOUNT.match(account):
        from ...errors import ConfigError

        raise ConfigError(f"DynamoDB table {table!r}: account {account!r} must be a 12-digit AWS account ID")
    return f"arn:{partition_of(region)}:dynamodb:{region}:{account}:table/{table}"
