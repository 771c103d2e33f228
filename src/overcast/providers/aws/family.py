"""The AWS family: DynamoDB, S3, SQS, SNS, Secrets Manager, SSM and the Lambda runtime."""

from __future__ import annotations

from ...resources.registry import Family, NativeMetrics

_m = "overcast.providers.aws"

FAMILY = Family(
    name="aws",
    cloud="aws",
    extra="aws",
    requires=("botocore", "boto3"),
    schemes={
        "kv": {"dynamodb": f"{_m}.dynamodb:DynamoDBKeyValueStore"},
        "bucket": {"s3": f"{_m}.s3:S3BlobStore"},
        "queue": {"sqs": f"{_m}.sqs:SQSQueue"},
        "topic": {"sns": f"{_m}.sns:SNSTopic"},
        "secret": {
            "secretsmanager": f"{_m}.secrets:SecretsManagerSecretStore",
            "ssm": f"{_m}.secrets:SSMSecretStore",
        },
    },
    native_metrics=NativeMetrics("emf"),
    runtimes={"lambda": f"{_m}.lambda_:lambda_handler"},
    deploy=f"{_m}.terraform:RENDERER",
    arns=f"{_m}.arns:url_of_arn",
    target_options=("region", "account"),
    semantic_conventions={
        "dynamodb": {"db.system": "dynamodb"},
        "s3": {"rpc.system": "aws-api", "rpc.service": "S3"},
        "sqs": {"messaging.system": "aws_sqs"},
        "sns": {"messaging.system": "aws.sns"},
        "secretsmanager": {"rpc.system": "aws-api", "rpc.service": "SecretsManager"},
        "ssm": {"rpc.system": "aws-api", "rpc.service": "SSM"},
    },
    pricing="overcast.providers.aws.pricing:PRICING",
)
