"""Secret ids under prefixes and paths, binary secrets, and that nothing imports botocore early."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest

import overcast
from overcast.errors import NotFound
from overcast.providers.aws.secrets import SecretsManagerSecretStore, SSMSecretStore


def test_secret_ids(moto_server: Any) -> None:
    prefix = f"app-{uuid.uuid4().hex[:8]}"
    manager = overcast.open_secrets(f"secretsmanager://{prefix}/prod")
    assert isinstance(manager, SecretsManagerSecretStore) and manager.secret_id("db") == f"{prefix}/prod/db"
    assert SecretsManagerSecretStore("secretsmanager://").secret_id("db") == "db"
    manager.client.create_secret(Name=f"{prefix}/prod/bin", SecretBinary=b"raw \xc3\xbc")
    assert manager.sync.get("bin") == "raw ü"
    ssm = overcast.open_secrets(f"ssm://{prefix}/prod")
    assert isinstance(ssm, SSMSecretStore) and ssm.secret_id("db") == f"/{prefix}/prod/db"
    ssm.put("db", "pw")
    raw = ssm.client.get_parameter(Name=f"/{prefix}/prod/db")["Parameter"]
    assert raw["Type"] == "SecureString" and ssm.sync.get("db") == "pw"
    with pytest.raises(NotFound) as info:
        ssm.sync.get("absent")
    assert f"/{prefix}/prod/absent" in str(info.value)


def test_opening_aws_providers_does_not_import_botocore() -> None:
    code = (
        "import sys, overcast, overcast.providers.aws\n"
        "kv = overcast.open_kv('dynamodb://t1-table'); b = overcast.open_bucket('s3://bkt/p')\n"
        "q = overcast.open_queue('sqs://q'); t = overcast.open_topic('sns://t')\n"
        "s = overcast.open_secrets('ssm://p')\n"
        "assert 'botocore' not in sys.modules, 'botocore imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
