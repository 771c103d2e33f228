"""moto's server: every AWS API the providers use (DynamoDB, S3, SQS, SNS, Secrets Manager, SSM, ...)."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from . import Server, find_program, free_port, missing, spawn

REGION = "us-east-1"

# moto's server routes S3 keys with ``.+``, which stops at a newline, so a key such as
# "a\nb" (valid on S3) answers 404. Start it with that one route widened to any character.
_MOTO = r"""
import sys
import moto.s3.models as models
_url_module = models.S3Backend._url_module.fget
def _any_key(self):
    module = _url_module(self)
    for path in [p for p in module.url_paths if "(?P<key_name>.+)" in p]:
        module.url_paths[path.replace("(?P<key_name>.+)", r"(?P<key_name>[\s\S]+)")] = module.url_paths.pop(path)
    return module
models.S3Backend._url_module = property(_any_key)
# moto's server answers on many threads and checks a write's condition, then writes, with
# nothing in between: two racing conditional writes can both succeed, which DynamoDB and S3
# never allow. One lock around each conditional write makes it atomic, as the services are.
import functools, threading
import moto.dynamodb.models as dynamodb
import moto.s3.responses as s3_responses
_writes = threading.RLock()
def _atomic(method):
    @functools.wraps(method)
    def atomic(*args, **kwargs):
        with _writes:
            return method(*args, **kwargs)
    return atomic
for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(dynamodb.DynamoDBBackend, _name, _atomic(getattr(dynamodb.DynamoDBBackend, _name)))
for _name in ("put_object", "delete_object", "complete_multipart_upload"):
    if hasattr(s3_responses.S3Response, _name):
        setattr(s3_responses.S3Response, _name, _atomic(getattr(s3_responses.S3Response, _name)))
# SQS's receive checks that a message is visible, then marks it received, unlocked: two
# consumers can both take one message, which a FIFO queue never allows. Each scan runs under
# the lock; the long poll waits outside it (a receive never holds up another queue).
import time
import moto.sqs.models as sqs
_receive = sqs.SQSBackend.receive_message
def _receive_once(self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names=None):
    end = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        with _writes:
            found = _receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        left = end - time.monotonic()
        if found or left <= 0:
            return found
        self.get_queue(queue_name).wait_for_messages(min(1.0, left))
sqs.SQSBackend.receive_message = _receive_once
sqs.SQSBackend.delete_message = _atomic(sqs.SQSBackend.delete_message)
from moto.server import main
sys.argv[0] = "moto_server"
main()
"""


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
        [sys.executable, "-c", _MOTO, "-H", "127.0.0.1", "-p", str(port)],
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


#: The session fixtures tests/conftest.py makes from this module: fixture name -> start function.
FIXTURES = {"moto_server": start_moto}
