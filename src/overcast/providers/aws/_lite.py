"""A botocore-free DynamoDB client for the common case, to cut Lambda cold starts.

Importing botocore and building a DynamoDB client costs about 125 ms — most of a Python
Lambda's cold start. DynamoDB speaks a small JSON protocol (``POST /`` with
``X-Amz-Target: DynamoDB_20120810.<Operation>`` and ``application/x-amz-json-1.0`` bodies)
signed with AWS Signature Version 4, so this module speaks it over the standard library:
``http.client`` with one kept-alive connection per thread, ``hashlib``/``hmac`` for the
signature (the signing key cached per secret, day and region), ``json`` for the bodies.

It is used only where it behaves exactly like botocore would (``dynamodb_client`` decides):

- credentials are in the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  optional ``AWS_SESSION_TOKEN``) — what Lambda provides, and what botocore's chain reads
  first; profiles, SSO, the instance metadata service and container credentials stay with
  botocore;
- the region is the URL option ``region``, ``AWS_REGION`` or ``AWS_DEFAULT_REGION``;
- no shared config file (``AWS_CONFIG_FILE`` or ``~/.aws/config``), ``AWS_PROFILE``, proxy
  variables, FIPS or dual-stack endpoints are in play (each can change what botocore does);
- the endpoint is the URL option ``endpoint``, else ``AWS_ENDPOINT_URL_DYNAMODB``, else
  ``AWS_ENDPOINT_URL`` (unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true), else
  ``https://dynamodb.<region>.amazonaws.com`` (``.com.cn`` in China), the same rules as
  botocore; TLS trusts what botocore trusts: ``AWS_CA_BUNDLE`` if set, else certifi's bundle.

The URL option ``client`` (or the environment variable ``OVERCAST_DYNAMODB_CLIENT``)
chooses: ``auto`` (the default: lite when the above holds, botocore otherwise),
``botocore`` (always botocore), ``lite`` (always lite; a ConfigError says what is missing).

Behaviour matches botocore's standard retry mode: up to ``attempts`` attempts (the URL
option ``retries``, default 5) of throttling errors, 5xx answers, 429s, timeouts, dropped
connections and responses whose ``x-amz-crc32`` does not match, sleeping
``random() * min(scale * 2**i, 20)`` seconds (scale 1 s for throttling, 25 ms otherwise;
``x-amz-retry-after`` honoured), and drawing on the same retry quota (500, 5 per throttling
retry, 14 per other retry). Errors are raised as :class:`ClientError` carrying botocore's
``response`` shape (``Error.Code`` from the JSON ``__type``, ``Error.Message``, and the
body's other fields such as ``Item``), so ``_client.aws_error`` maps them through the same
tables; connection failures are raised as ``EndpointConnectionError``,
``ConnectTimeoutError``, ``ReadTimeoutError`` or ``ConnectionClosedError``, named as
botocore names them. Deadlines as the botocore clients of ``_client`` have them: each
attempt connects and reads within the URL option ``timeout`` (default 5 s), a retry is made
only if its backoff ends within it, and a refused connection is not retried.

Responses are DynamoDB's JSON as sent: numbers stay strings, as in botocore, but binary
values stay base64 text and timestamps epoch numbers. Operations the provider does not use
are handed to a botocore client built on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import threading
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ... import telemetry
from ...errors import ConfigError
from ...resources.url import ResourceURL
from ._client import attempts_of, deadline_of

__all__ = [
    "ClientError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "EndpointConnectionError",
    "LiteDynamoDB",
    "ReadTimeoutError",
    "SSLError",
    "dynamodb_client",
    "lite_unsound",
    "sign",
]

SERVICE = "dynamodb"
TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
USER_AGENT = "overcast-dynamodb-lite"
MODES = ("auto", "botocore", "lite")

#: botocore's standard mode: ThrottledRetryableChecker's codes.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
#: TransientRetryableChecker's codes and statuses, and DynamoDB's one modeled retryable error.
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "ReplicatedWriteConflictException"}
)
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
#: DynamoDB's modeled errors: a 429 carrying one of these is not retried as throttling by status.
_MODELED = frozenset(
    {
        "BackupInUseException", "BackupNotFoundException", "ConditionalCheckFailedException",
        "ContinuousBackupsUnavailableException", "DuplicateItemException", "ExportConflictException",
        "ExportNotFoundException", "GlobalTableAlreadyExistsException", "GlobalTableNotFoundException",
        "IdempotentParameterMismatchException", "ImportConflictException", "ImportNotFoundException",
        "IndexNotFoundException", "InternalServerError", "InvalidExportTimeException",
        "InvalidRestoreTimeException", "ItemCollectionSizeLimitExceededException", "LimitExceededException",
        "PointInTimeRecoveryUnavailableException", "PolicyNotFoundException",
        "ProvisionedThroughputExceededException", "ReplicaAlreadyExistsException", "ReplicaNotFoundException",
        "ReplicatedWriteConflictException", "RequestLimitExceeded", "ResourceInUseException",
        "ResourceNotFoundException", "TableAlreadyExistsException", "TableInUseException",
        "TableNotFoundException", "ThrottlingException", "TransactionCanceledException",
        "TransactionConflictException", "TransactionInProgressException",
    }
)  # fmt: skip
MAX_BACKOFF = 20.0
THROTTLING_SCALE = 1.0
TRANSIENT_SCALE = 0.025  # botocore's scale for DynamoDB
RETRY_AFTER_EXTRA = 5.0
QUOTA = 500
THROTTLING_RETRY_COST = 5
RETRY_COST = 14


class ClientError(Exception):
    """An error answer, shaped like botocore's ``ClientError`` (``response``, ``operation_name``)."""

    def __init__(self, response: dict[str, Any], operation_name: str) -> None:
        error, metadata = response["Error"], response.get("ResponseMetadata", {})
        retried = f" (reached max retries: {metadata['RetryAttempts']})" if metadata.get("MaxAttemptsReached") else ""
        super().__init__(
            f"An error occurred ({error['Code']}) when calling the {operation_name} operation{retried}: "
            f"{error['Message']}"
        )
        self.response = response
        self.operation_name = operation_name


class EndpointConnectionError(ConnectionError):
    """The endpoint could not be reached (botocore's name, mapped to Unavailable)."""


class ConnectTimeoutError(EndpointConnectionError):
    """Connecting took longer than the connect timeout."""


class ReadTimeoutError(ConnectionError):
    """The answer took longer than the read timeout."""


class ConnectionClosedError(ConnectionError):
    """The connection broke mid-answer, or the answer failed its CRC32 check."""


class SSLError(ConnectionError):
    """TLS failed (an untrusted certificate, ...): botocore's name, retried as it does."""


# -- Signature Version 4 -----------------------------------------------------------------------

_key_lock = threading.Lock()
_signing_keys: dict[tuple[str, str, str, str], bytes] = {}


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    cache_key = (secret, day, region, service)
    found = _signing_keys.get(cache_key)
    if found is None:
        key = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
        for part in (region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        with _key_lock:
            if len(_signing_keys) > 16:  # a new day or rotated credentials: drop the old keys
                _signing_keys.clear()
            _signing_keys[cache_key] = found = key
    return found


def sign(
    headers: dict[str, str],
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/",
    region: str,
    service: str = SERVICE,
    access_key: str,
    secret_key: str,
    token: str | None,
    amz_date: str,
) -> None:
    """Sign a request in place: add ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a token) and
    ``Authorization`` to ``headers``, which must hold ``Host``. Every header but ``User-Agent``
    is signed, as botocore's ``SigV4Auth`` does."""
    headers["X-Amz-Date"] = amz_date
    if token:
        headers["X-Amz-Security-Token"] = token
    canonical = sorted(
        (name.lower(), " ".join(value.split())) for name, value in headers.items() if name.lower() != "user-agent"
    )
    signed = ";".join(name for name, _ in canonical)
    request = "\n".join(
        (
            method,
            quote(path or "/", safe="/~"),
            "",
            "".join(f"{name}:{value}\n" for name, value in canonical),
            signed,
            hashlib.sha256(body).hexdigest(),
        )
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
    signature = hmac.new(_signing_key(secret_key, day, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )


# -- the client --------------------------------------------------------------------------------


class _Quota:
    """botocore's retry quota: retries draw on a bucket that successes refill."""

    def __init__(self) -> None:
        self.available = QUOTA
        self._lock = threading.Lock()

    def acquire(self, amount: int) -> bool:
        with self._lock:
            if amount > self.available:
                return False
            self.available -= amount
            return True

    def release(self, amount: int) -> None:
        if self.available < QUOTA:
            with self._lock:
                self.available = min(QUOTA, self.available + amount)


def _error_response(status: int, headers: Any, data: bytes) -> dict[str, Any]:
    """botocore's JSON error parsing: the code is ``__type`` after its ``#`` (else the status),
    the message ``message`` or ``Message``; a 5xx page that is not JSON gets the status's name."""
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
        if status >= 500:
            import http.client

            body["message"] = http.client.responses.get(status, "")
    code = str(body.pop("__type", None) or status).split(":", 1)[0].rsplit("#", 1)[-1]
    message = body.pop("message", None) or body.pop("Message", None) or ""
    metadata = {"HTTPStatusCode": status, "RequestId": headers.get("x-amzn-RequestId", ""), "RetryAttempts": 0}
    return {**body, "Error": {"Code": code, "Message": str(message)}, "ResponseMetadata": metadata}


def _blob(value: Any) -> str:
    """Binary attribute values (``{"B": b"..."}``) go out as base64 text, as botocore sends them."""
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"DynamoDB parameters must be JSON values or bytes, not {type(value).__name__}")


class LiteDynamoDB:
    """DynamoDB over ``http.client``; the methods take and return what botocore's client does."""

    def __init__(
        self, endpoint: str, region: str, *, attempts: int = 5, ca_bundle: str | None = None, timeout: float = 5.0
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"DynamoDB endpoint {endpoint!r} must be an http:// or https:// URL")
        self.endpoint = endpoint
        self.region = region
        self.attempts = attempts
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        default = (self._https and self._port == 443) or (not self._https and self._port == 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default else f"{host}:{self._port}"
        self._path = parts.path or "/"
        self._local = threading.local()
        self._quota = _Quota()
        self._ssl: Any = None
        self._botocore: Any = None
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # a forked child opens its own connections
            os.register_at_fork(after_in_child=self._forget_connections)

    def _forget_connections(self) -> None:
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"LiteDynamoDB({self.endpoint!r}, region={self.region!r})"

    # -- the operations Overcast uses ----------------------------------------------------------

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self.call("GetItem", params)

    def put_item(self, **params: Any) -> dict[str, Any]:
        return self.call("PutItem", params)

    def delete_item(self, **params: Any) -> dict[str, Any]:
        return self.call("DeleteItem", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self.call("UpdateItem", params)

    def query(self, **params: Any) -> dict[str, Any]:
        return self.call("Query", params)

    def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return self.call("BatchGetItem", params)

    def batch_write_item(self, **params: Any) -> dict[str, Any]:
        return self.call("BatchWriteItem", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return self.call("TransactWriteItems", params)

    def create_table(self, **params: Any) -> dict[str, Any]:
        return self.call("CreateTable", params)

    def describe_table(self, **params: Any) -> dict[str, Any]:
        return self.call("DescribeTable", params)

    def describe_time_to_live(self, **params: Any) -> dict[str, Any]:
        return self.call("DescribeTimeToLive", params)

    def update_time_to_live(self, **params: Any) -> dict[str, Any]:
        return self.call("UpdateTimeToLive", params)

    def __getattr__(self, name: str) -> Any:
        """Anything else (``scan``, ``meta``, ...) is botocore's, from a client built on first use."""
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._botocore is None:
                from ._client import client

                options = {
                    "region": self.region,
                    "endpoint": self.endpoint,
                    "retries": str(self.attempts),
                    "timeout": str(self.timeout),
                }
                self._botocore = client("dynamodb", ResourceURL("dynamodb", "lite", "", options))
        return getattr(self._botocore, name)

    # -- one call: sign, send, retry ------------------------------------------------------------

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send ``operation`` with ``params`` (botocore's keyword arguments) and return the answer."""
        body = json.dumps(params, separators=(",", ":"), default=_blob).encode()
        retry_cost: int | None = None
        attempt = 0
        started = time.monotonic()
        while True:
            attempt += 1
            status = 0
            code = ""
            retry_after: str | None = None
            try:
                status, headers, data = self._send(operation, body)
            except (EndpointConnectionError, ReadTimeoutError, ConnectionClosedError, SSLError) as exc:
                error: Exception = exc
            else:
                checksum = headers.get("x-amz-crc32")
                if checksum is not None and checksum.isdigit() and zlib.crc32(data) != int(checksum):
                    error = ConnectionClosedError(
                        f"{operation}: the answer's CRC32 {zlib.crc32(data)} does not match x-amz-crc32 {checksum}"
                    )
                elif 200 <= status < 300:
                    self._quota.release(1 if retry_cost is None else retry_cost)
                    return json.loads(data) if data else {}
                else:
                    response = _error_response(status, headers, data)
                    response["ResponseMetadata"]["RetryAttempts"] = attempt - 1
                    code = response["Error"]["Code"]
                    retry_after = headers.get("x-amz-retry-after")
                    error = ClientError(response, operation)
            throttling = code in THROTTLING_CODES or (status == 429 and code not in _MODELED)
            transient = code in TRANSIENT_CODES or status in TRANSIENT_STATUSES or not isinstance(error, ClientError)
            if not (throttling or transient):
                raise error
            if attempt >= self.attempts or isinstance(error, EndpointConnectionError):  # refused: not retried
                if isinstance(error, ClientError):  # as botocore says it
                    error.response["ResponseMetadata"]["MaxAttemptsReached"] = True
                    error = ClientError(error.response, operation)
                raise error
            cost = THROTTLING_RETRY_COST if throttling else RETRY_COST
            if not self._quota.acquire(cost):
                raise error
            retry_cost = cost
            delay = random.random() * min(
                (THROTTLING_SCALE if throttling else TRANSIENT_SCALE) * 2 ** (attempt - 1), MAX_BACKOFF
            )
            if retry_after is not None and retry_after.isdigit():
                delay = max(delay, min(int(retry_after) / 1000, RETRY_AFTER_EXTRA + delay))
            if time.monotonic() - started + delay >= self.timeout:
                raise error  # the retry would start past the deadline
            telemetry.retried("dynamodb")
            time.sleep(delay)

    def signed_headers(self, operation: str, body: bytes, amz_date: str | None = None) -> dict[str, str]:
        """The headers of one request, signed now (or at ``amz_date``) with the environment's credentials."""
        environ = os.environ
        headers = {
            "Host": self._host_header,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": TARGET_PREFIX + operation,
            "User-Agent": USER_AGENT,
        }
        sign(
            headers,
            body,
            path=self._path,
            region=self.region,
            access_key=environ.get("AWS_ACCESS_KEY_ID", ""),
            secret_key=environ.get("AWS_SECRET_ACCESS_KEY", ""),
            token=environ.get("AWS_SESSION_TOKEN") or None,
            amz_date=amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        )
        return headers

    def _send(self, operation: str, body: bytes) -> tuple[int, Any, bytes]:
        headers = self.signed_headers(operation, body)
        import http.client
        import ssl

        for fresh in (False, True):
            connection = self._connection(fresh)
            reused = connection.sock is not None
            if not reused:
                try:
                    connection.connect()
                except TimeoutError as exc:
                    self._drop()
                    raise ConnectTimeoutError(f"Connect timeout on endpoint URL: {self.endpoint!r}") from exc
                except ssl.SSLError as exc:
                    self._drop()
                    raise SSLError(f"SSL validation failed for {self.endpoint} {exc}") from exc
                except OSError as exc:
                    self._drop()
                    raise EndpointConnectionError(f"Could not connect to the endpoint URL: {self.endpoint!r}") from exc
            try:
                connection.request("POST", self._path, body, headers)
                response = connection.getresponse()
                data = response.read()
            except TimeoutError as exc:
                self._drop()
                raise ReadTimeoutError(f"Read timeout on endpoint URL: {self.endpoint!r}") from exc
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self._drop()
                if reused and not fresh:
                    continue  # the server closed a kept-alive connection: once more on a new one
                raise ConnectionClosedError(
                    f"Connection was closed before we received a valid response from endpoint URL: {self.endpoint!r}"
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise ConnectionClosedError(f"{operation} on {self.endpoint!r}: {exc}") from exc
            if response.will_close:
                self._drop()
            return response.status, response.headers, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self, fresh: bool) -> Any:
        connection = None if fresh else getattr(self._local, "connection", None)
        if connection is None:
            import http.client

            if self._https:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=self._ssl_context()
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            connection._create_connection = _create_connection  # type: ignore[attr-defined]  # its hook
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _ssl_context(self) -> Any:
        """Trust what botocore trusts: ``AWS_CA_BUNDLE``, else certifi's bundle, else botocore's own."""
        if self._ssl is None:
            import ssl

            self._ssl = ssl.create_default_context(cafile=self.ca_bundle or _default_ca_file())
        return self._ssl

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        self._drop()


def _create_connection(address: tuple[str, int], *args: Any) -> Any:
    """``socket.create_connection`` with an ASCII host name as bytes: ``getaddrinfo`` encodes
    a ``str`` host with the ``idna`` codec, whose import (``encodings.idna``, ``stringprep``,
    ``unicodedata``) would otherwise be part of every cold start."""
    import socket

    host, port = address
    named = host.encode() if host.isascii() else host  # getaddrinfo takes bytes; typeshed says str
    return socket.create_connection((named, port), *args)  # type: ignore[arg-type]


def _default_ca_file() -> str | None:
    try:
        import certifi
    except ImportError:
        pass
    else:
        return str(certifi.where())
    import importlib.util

    spec = importlib.util.find_spec("botocore")  # botocore's bundled cacert.pem, without importing it
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "cacert.pem"
        if bundled.exists():
            return str(bundled)
    return None  # the system's certificates


# -- choosing ----------------------------------------------------------------------------------

_clients: dict[tuple[str, str, int, str | None, float], LiteDynamoDB] = {}
_clients_lock = threading.Lock()
_TRUE = ("1", "true", "yes", "on")


def mode_of(location: ResourceURL) -> str:
    mode = location.option_choice("client", MODES, None)
    if mode is not None:
        return mode
    mode = (os.environ.get("OVERCAST_DYNAMODB_CLIENT") or "auto").lower()
    if mode not in MODES:
        raise ConfigError(
            f"{location}: OVERCAST_DYNAMODB_CLIENT must be one of {', '.join(MODES)} (or set the URL option "
            f"client), got {mode!r}"
        )
    return mode


def _region(location: ResourceURL) -> str | None:
    return location.option("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _endpoint(location: ResourceURL, region: str) -> str:
    endpoint = location.option("endpoint")
    if endpoint:
        return endpoint
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() not in _TRUE:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return endpoint
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://dynamodb.{region}.{suffix}"


def lite_unsound(location: ResourceURL, *, strict: bool = False) -> str | None:
    """Why the lite client would not do what botocore does here, or None when it would.

    ``strict`` (the default ``auto`` mode) also declines when a shared config file or a
    profile might change botocore's choices; ``client=lite`` accepts those.
    """
    environ = os.environ
    if not environ.get("AWS_ACCESS_KEY_ID") or not environ.get("AWS_SECRET_ACCESS_KEY"):
        return "credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    region = _region(location)
    if not region:
        return "a region: the URL option region, AWS_REGION or AWS_DEFAULT_REGION"
    if "-iso" in region:
        return f"a region in the aws or aws-cn partition, not {region!r}"
    for name in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        if environ.get(name, "").lower() in _TRUE:
            return f"no {name} (FIPS and dual-stack endpoints are botocore's)"
    https = _endpoint(location, region).startswith("https:")
    for name in ("HTTPS_PROXY", "https_proxy") if https else ("HTTP_PROXY", "http_proxy"):
        if environ.get(name):
            return f"no proxy ({name} is set)"
    if strict:
        if environ.get("AWS_PROFILE"):
            return "no AWS_PROFILE"
        config = environ.get("AWS_CONFIG_FILE") or str(Path.home() / ".aws" / "config")
        if Path(config).expanduser().exists():
            return f"no shared config file ({config} may set endpoints, CA bundles or retries)"
    return None


def dynamodb_client(location: ResourceURL) -> LiteDynamoDB | None:
    """The shared lite client for ``location``, or None where botocore must serve it."""
    mode = mode_of(location)
    if mode == "botocore":
        return None
    reason = lite_unsound(location, strict=mode == "auto")
    if reason is not None:
        if mode == "lite":
            raise ConfigError(f"{location}: client=lite needs {reason}")
        return None
    region = _region(location) or ""
    endpoint = _endpoint(location, region)
    attempts = attempts_of(location)
    timeout = deadline_of(location)
    ca_bundle = os.environ.get("AWS_CA_BUNDLE") or None
    key = (region, endpoint, attempts, ca_bundle, timeout)
    found = _clients.get(key)
    if found is None:
        with _clients_lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = LiteDynamoDB(
                    endpoint, region, attempts=attempts, ca_bundle=ca_bundle, timeout=timeout
                )
    return found
