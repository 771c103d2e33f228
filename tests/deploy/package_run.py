"""Run in a fresh interpreter (``python -I``) from an unzipped package: import the generated
entry point with the CLI's and dev server's dependencies made unimportable (and first the
modules named in ``PACKAGE_RUN_IMPORTS``, comma-separated), then serve one queue message
and one HTTP request against moto. Prints a JSON report."""

from __future__ import annotations

import importlib
import importlib.abc
import json
import os
import sys
from typing import Any

FORBIDDEN = ("typer", "rich", "uvicorn", "watchfiles", "dotenv", "a2wsgi", "click")


class Refuse(importlib.abc.MetaPathFinder):
    """Makes the packages a deployed function must not need unimportable."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"{name} is not in a function's package", name=name)


def main(package: str, site: list[str]) -> None:
    sys.meta_path.insert(0, Refuse())
    sys.path[:0] = [package]
    sys.path.extend(site)  # boto3 and botocore: the Lambda runtime has them
    also = [importlib.import_module(name) for name in os.environ.get("PACKAGE_RUN_IMPORTS", "").split(",") if name]
    import overcast_handler

    handler = overcast_handler.handler
    record = {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": json.dumps({"id": "o1", "total": 12}),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:shop-jobs",
    }
    batch = handler({"Records": [record]}, None)
    request = {
        "version": "2.0",
        "rawPath": "/orders/o1",
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.eu-west-1.on.aws"},
        "requestContext": {
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "http": {"method": "GET", "path": "/orders/o1", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "req-1",
        },
        "isBase64Encoded": False,
    }
    reply = handler(request, None)
    import overcast

    report = {
        "overcast": overcast.__file__,
        "batch": batch,
        "status": reply["statusCode"],
        "body": reply["body"],
        "forbidden_loaded": sorted(m for m in sys.modules if m.partition(".")[0] in FORBIDDEN),
        "imported": {module.__name__: module.__file__ for module in also},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
