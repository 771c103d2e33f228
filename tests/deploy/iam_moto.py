"""moto's server with IAM enforcement evaluating policies as AWS does, for the calls Overcast makes.

moto evaluates a caller's IAM policies once ``/moto-api/reset-auth`` sets the count of
unauthenticated calls (``INITIAL_NO_AUTH_ACTION_COUNT``). Where its evaluation departs
from AWS's, these patches (the test server's, not Overcast's) bring it in line, each
from the Service Authorization Reference:

- the resource: moto asks DynamoDB, SNS and Secrets Manager calls, and SQS's
  ``GetQueueUrl``, about resource ``*``, which no statement scoped to one ARN matches;
  here they name the table (``TableName``, or the first table of a batch; a table's ARN as
  it is), the topic
  (``TopicArn``), the secret's ARN and the queue's ARN (``QueueName``).
- the action: moto names S3 calls by their operation, but IAM authorises ``HeadObject``
  as ``s3:GetObject``, ``ListObjectsV2`` and ``HeadBucket`` as ``s3:ListBucket`` and the
  multipart calls as ``s3:PutObject``.
- wildcards: IAM's ``?`` matches one character (moto's matcher fails on it) and every
  other character is literal (moto reads ``.`` as a regular expression).
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import servers
from servers import Server
from servers.aws import _MOTO, REGION

_RESOURCES = r"""
import re as _re
import moto.dynamodb.responses as _ddb
import moto.sns.responses as _sns
import moto.sqs.responses as _sqs
import moto.secretsmanager.responses as _secrets
import moto.iam.access_control as _access
def _table_arn(self):
    body = self.body if isinstance(self.body, dict) else {}
    name = body.get("TableName") or next(iter(body.get("RequestItems") or {}), None)
    if name and name.startswith("arn:"):  # a table named by its ARN (another account's, say): that ARN
        return str(name)
    return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{name}" if name else "*"
def _topic_arn(self):
    return self._get_param("TopicArn") or "*"
_queue_arn = _sqs.SQSResponse._determine_resource
def _queue_by_name(self):
    name = self._get_param("QueueName")
    if name and not self._get_param("QueueUrl"):
        return f"arn:aws:sqs:{self.region}:{self.current_account}:{name}"
    return _queue_arn(self)
def _secret_arn(self):
    secret_id = self._get_param("SecretId")
    secrets = self.backend.secrets
    return secrets[secret_id].arn if secret_id and secret_id in secrets else "*"
_ddb.DynamoHandler._determine_resource = _table_arn
_sns.SNSResponse._determine_resource = _topic_arn
_sqs.SQSResponse._determine_resource = _queue_by_name
_secrets.SecretsManagerResponse._determine_resource = _secret_arn
_S3_ACTIONS = {
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
}
_check = _access.IAMRequestBase.check_action_permitted
def _check_as_aws(self, resource):
    self._action = _S3_ACTIONS.get(self._action, self._action)
    return _check(self, resource)
_access.IAMRequestBase.check_action_permitted = _check_as_aws
def _match(pattern, string):
    regex = _re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return _re.match(f"^{regex}$", string)
_access.IAMPolicyStatement._match = staticmethod(_match)
"""


def start_moto_iam() -> Server:
    """A moto server of its own (enforcement is server-wide), not yet enforcing."""
    program = servers.find_program("moto_server", Path(sys.executable).parent)
    if program is None:
        servers.missing("moto_server", "pip install 'moto[server]>=5.2'")
    port = servers.free_port()
    script = _MOTO.replace("from moto.server import main", _RESOURCES + "\nfrom moto.server import main")

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1) as response:
            return bool(response.status == 200)

    return servers.spawn(
        "moto-iam",
        [sys.executable, "-c", script, "-H", "127.0.0.1", "-p", str(port)],
        port,
        ready=ready,
        server_env={
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        },
    )


def enforce(server: Server, on: bool) -> None:
    """Evaluate IAM policies on every call from now on (``on``), or on none."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/moto-api/reset-auth",
        data=b"0" if on else b"inf",
        method="POST",
        headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
