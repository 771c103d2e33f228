"""obstore against botocore (boto3's engine) as the S3 client, on the same moto server, in one run.

Two figures decide the S3 provider's client: cold import (a fresh interpreter importing the
library and building an S3 client; best of 5) and throughput (MB/s for put and get of an
8 MB and a 32 MB object; median of the rounds). Both clients run synchronously, one
request at a time, as the provider's blocking hooks do.

    .venv/bin/python benchmarks/aws_s3_clients.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Result, arguments, interleave, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers.aws import start_moto

IMPORTS = {
    "obstore": "import obstore\nfrom obstore.store import S3Store\n"
    "S3Store('b', endpoint='http://127.0.0.1:1', region='us-east-1', allow_http=True)",
    "botocore": "import botocore.session\nbotocore.session.get_session().create_client('s3', region_name='us-east-1')",
    "boto3": "import boto3\nboto3.client('s3', region_name='us-east-1')",
    # In an AWS function botocore is loaded for DynamoDB or SQS anyway: what does S3 add?
    "botocore, dynamodb only": "import botocore.session\n"
    "botocore.session.get_session().create_client('dynamodb', region_name='us-east-1')",
    "botocore, dynamodb + s3": "import botocore.session\ns = botocore.session.get_session()\n"
    "s.create_client('dynamodb', region_name='us-east-1'); s.create_client('s3', region_name='us-east-1')",
    "botocore dynamodb + obstore": "import botocore.session\n"
    "botocore.session.get_session().create_client('dynamodb', region_name='us-east-1')\n"
    "from obstore.store import S3Store\n"
    "S3Store('b', endpoint='http://127.0.0.1:1', region='us-east-1', allow_http=True)",
}


def cold_import_ms(code: str, tries: int) -> float:
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def mb_per_s(size: int, op: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        op()
        return size / 1e6 / (time.perf_counter() - start)

    return run


def main() -> None:
    args = arguments(__doc__ or "")
    tries = 2 if args.quick else 5
    rounds = 2 if args.quick else 5
    baseline = cold_import_ms("pass", tries)
    print(f"cold import + S3 client (best of {tries}, interpreter start {baseline:.0f} ms subtracted):")
    for name, code in IMPORTS.items():
        print(f"  {name:<28} {cold_import_ms(code, tries) - baseline:7.1f} ms")

    server = start_moto()
    try:
        server.apply_env()
        import botocore.session
        from obstore import get, put
        from obstore.store import S3Store

        endpoint = os.environ["AWS_ENDPOINT_URL"]
        s3 = botocore.session.get_session().create_client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        store = S3Store(
            "bench",
            endpoint=endpoint,
            region="us-east-1",
            allow_http=True,
            access_key_id="testing",
            secret_access_key="testing",
            session_token="testing",
        )
        rows = []
        for size in (8_000_000, 32_000_000):
            data = os.urandom(size)
            label = f"{size // 1_000_000} MB"
            put_ob, put_bc = Result(f"put {label}", "MB/s"), Result(f"put {label}", "MB/s")
            get_ob, get_bc = Result(f"get {label}", "MB/s"), Result(f"get {label}", "MB/s")

            def ob_put(data: bytes = data) -> None:
                put(store, "ob", data)

            def bc_put(data: bytes = data) -> None:
                s3.put_object(Bucket="bench", Key="bc", Body=data)

            def ob_get() -> None:
                get(store, "ob").bytes()

            def bc_get() -> None:
                s3.get_object(Bucket="bench", Key="bc")["Body"].read()

            interleave(
                rounds,
                (put_ob, mb_per_s(size, ob_put)),
                (put_bc, mb_per_s(size, bc_put)),
                (get_ob, mb_per_s(size, ob_get)),
                (get_bc, mb_per_s(size, bc_get)),
            )
            rows += [(f"put {label} (obstore / botocore)", put_ob, put_bc, ""), (f"get {label}", get_ob, get_bc, "")]
        report(f"S3 throughput on moto, MB/s, median of {rounds} (ratio > 1: obstore faster)", rows)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
