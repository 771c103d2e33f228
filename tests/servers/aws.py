"""moto's server: every AWS API the providers use (DynamoDB, S3, SQS, SNS, Secrets Manager, SSM, ...)."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from . import Server, find_program, free_port, missing, spawn

REGION = "us-east-1"


def start_moto() -> Server:
    program = find_program("moto_server", Path(sys.executable).parent)
    if program is None:
        missing("moto_server", "pip install 'moto[server]>=5.2'")
    port = free_port()

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)

    return spawn(
        "moto",
        [program, "-H", "127.0.0.1", "-p", str(port)],
        port,
        ready=ready,
        server_env={
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        },
    )
