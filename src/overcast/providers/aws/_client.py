"""One botocore session and one client per (service, region, endpoint), and the AWS error table.

Clients are built with botocore directly (boto3's resource layer is not needed and
costs import time). The endpoint comes from the URL option ``endpoint``, else from
botocore's own ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables; the
region from the URL option ``region``, else ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
the shared config file, and ``us-east-1`` last. Credentials come from botocore's
chain only, never from a URL. botocore retries throttling and 5xx answers in its
standard mode (5 attempts, or the URL option ``retries``) before Overcast raises, within
the call's deadline (the URL option ``timeout``, :data:`DEFAULT_TIMEOUT`): each attempt
connects and reads within it, a retry is made only if its backoff ends before it, and a
refused connection is not retried at all (the server is not there; the caller fails over).
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ... import telemetry
from ...errors import (
    Conflict,
    InvalidArgument,
    MissingDependency,
    NotFound,
    PermissionDenied,
    ProviderError,
    Throttled,
    Unavailable,
    rewrapped,
)
from ...resources.url import ResourceURL

__all__ = ["attempts_of", "aws_error", "client", "deadline_of", "error_code", "jittered_backoff", "region_of"]

T = TypeVar("T")

_lock = threading.Lock()
_session: Any = None
_clients: dict[tuple[str, str, str | None, str | None, int, float, float], Any] = {}

#: Seconds a call may take (the URL option ``timeout``): DynamoDB, SQS and SNS answer in
#: milliseconds and S3's first byte comes in a few hundred at worst, so 5 s leaves room for
#: a slow connection and a few quick retries, and a function of 10-30 s time to fail over.
DEFAULT_TIMEOUT = 5.0

#: botocore retries these itself (standard mode: exponential backoff with jitter)
#: before the error reaches us; we then raise Throttled.
_THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "LimitExceededException",
        "TransactionInProgressException",
    }
)
_NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchBucket",
        "NoSuchKey",
        "NotFound",
        "404",
        "NoSuchUpload",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
        "ParameterNotFound",
        "NotFoundException",
    }
)
_CONFLICT = frozenset(
    {
        "ConditionalCheckFailedException",
        "PreconditionFailed",
        "412",
        "ConditionalRequestConflict",
        "TransactionConflictException",
        "TransactionCanceledException",
    }
)
_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AuthorizationError",
        "ExpiredToken",
        "ExpiredTokenException",
        "403",
    }
)
_INVALID = frozenset(
    {
        "ValidationException",
        "ValidationError",
        "InvalidParameterValue",
        "InvalidParameterException",
        "InvalidParameter",
        "InvalidArgument",
        "InvalidRequest",
        "EntityTooLarge",
        "InvalidAttributeName",
        "InvalidBucketName",
        "InvalidAttributeValue",
        "InvalidMessageContents",
        "ItemCollectionSizeLimitExceededException",
        "ValidationException.ItemSize",
    }
)
_UNAVAILABLE = frozenset(
    {"InternalServerError", "InternalError", "ServiceUnavailable", "ServiceUnavailableException", "503", "500"}
)


def _botocore_session() -> Any:
    global _session
    if _session is None:
        try:
            import botocore.session
        except ImportError as exc:  # pragma: no cover - the aws extra is installed in tests
            raise MissingDependency("AWS providers need botocore: pip install 'overcast[aws]'") from exc
        _session = botocore.session.get_session()
        for name in _HEADER_LOGGERS:
            logging.getLogger(name).addFilter(_REDACT_TOKEN)
    return _session


#: botocore's loggers whose DEBUG lines quote a request's headers or its canonical request,
#: the session token (``X-Amz-Security-Token``) among them
_HEADER_LOGGERS = (
    "botocore.endpoint",
    "botocore.auth",
    "botocore.httpsession",
    "botocore.hooks",
    "botocore.retryhandler",
)
_TOKEN = re.compile(r"(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^\s'\",}&]+", re.IGNORECASE)


class _RedactSessionToken(logging.Filter):
    """Replace the session token in botocore's own log lines by ``***`` (it logs at DEBUG only,
    so this runs only where DEBUG is on). The secret key itself botocore never logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot format carries no header to hide
            return True
        if "security-token" in text.lower():
            record.msg, record.args = _TOKEN.sub(r"\1***", text), None
        return True


_REDACT_TOKEN = _RedactSessionToken()


def region_of(location: ResourceURL) -> str:
    """The region a resource lives in: the URL option, the environment, the config file, us-east-1."""
    region = location.option("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    configured = _botocore_session().get_config_variable("region")
    return str(configured) if configured else "us-east-1"


def client(service: str, location: ResourceURL, *, wait: float = 0.0) -> Any:
    """The shared botocore client of ``service`` for the region, endpoint, retries and deadline
    of ``location``; ``wait`` seconds are added to its read timeout (SQS's long polls).

    botocore clients are thread-safe, so every resource in a process shares one per service.
    """
    region = region_of(location)
    endpoint = location.option("endpoint")
    attempts = attempts_of(location)
    seconds = deadline_of(location)
    key = (service, region, endpoint, os.environ.get("AWS_ENDPOINT_URL"), attempts, seconds, wait)
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "total_max_attempts": attempts},
                max_pool_connections=32,
                tcp_keepalive=True,
                connect_timeout=seconds,
                read_timeout=seconds + wait,
            )
            found = _clients[key] = _botocore_session().create_client(
                service, region_name=region, endpoint_url=endpoint, config=config
            )
            found.meta.events.register("after-call", _count_retries)
            found.meta.events.register_first("before-call", _started)
            # on botocore's own event name: a handler of a more specific name runs first
            retry_event = f"needs-retry.{found.meta.service_model.service_id.hyphenize()}"
            found.meta.events.register_first(retry_event, _within(seconds + wait))
        return found


def deadline_of(location: ResourceURL) -> float:
    """The URL option ``timeout``: seconds one call may take, retries included (default 5)."""
    return location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True)


def _started(context: dict[str, Any], **_: Any) -> None:
    """botocore's ``before-call`` hook: when the call began, for :func:`_within`."""
    context["overcast_started"] = time.monotonic()


def _within(seconds: float) -> Callable[..., bool | None]:
    """A ``needs-retry`` hook run before botocore's own: ``False`` (no retry) for a refused
    connection, or when the longest backoff botocore could sleep next would end past the
    deadline; ``None`` lets botocore decide (its retryable errors, quota and backoff)."""
    from botocore.exceptions import EndpointConnectionError

    def needs_retry(attempts: int, request_dict: dict[str, Any], caught_exception: Any = None, **_: Any) -> bool | None:
        if isinstance(caught_exception, EndpointConnectionError):
            return False
        started = request_dict.get("context", {}).get("overcast_started")
        longest = min(2.0 ** (attempts - 1), 20.0)  # botocore's throttling backoff, its longest
        if started is not None and time.monotonic() - started + longest > seconds:
            return False
        return None

    return needs_retry


def attempts_of(location: ResourceURL) -> int:
    """The URL option ``retries``: attempts per call in botocore's standard mode, 1 to 20 (default 5)."""
    return location.option_int("retries", 5, minimum=1, maximum=20, unit="attempts")


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return ""


def aws_error(exc: BaseException, about: str, *, resource: str) -> ProviderError:
    """Map a botocore exception onto :mod:`overcast.errors` (raise it ``from exc``)."""
    if isinstance(exc, ProviderError):  # mapped already, by a helper the caller wrapped (queue_url, topic_arn)
        return rewrapped(exc)
    code = error_code(exc)
    message = f"{about}: {code + ': ' if code else ''}{_detail(exc)}"
    if code in _THROTTLED:
        return Throttled(message, resource=resource)
    if code in _NOT_FOUND or code.endswith("NotFound") or code.endswith("NotFoundException"):
        return NotFound(message, resource=resource)
    if code in _CONFLICT:
        return Conflict(message, resource=resource)
    if code in _DENIED:
        return PermissionDenied(message, resource=resource)
    if code in _INVALID:
        return InvalidArgument(message, resource=resource)
    if code in _UNAVAILABLE or code.startswith("5"):
        return Unavailable(message, resource=resource)
    name = type(exc).__name__
    if name in {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionError",
        "ProxyConnectionError",
    }:
        return Unavailable(message, resource=resource)
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return PermissionDenied(message, resource=resource)
    return ProviderError(message, resource=resource)


def _detail(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        text = response.get("Error", {}).get("Message")
        if text:
            return str(text)
    return str(exc)


def _count_retries(parsed: Any = None, model: Any = None, **_: Any) -> None:
    """botocore's ``after-call`` hook (successes and errors alike): the retries its standard
    mode made for this call, as ``overcast.retries``."""
    if parsed:
        retries = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retries:
            service = model.service_model.endpoint_prefix if model is not None else "aws"
            telemetry.retried(service, retries)


def jittered_backoff(
    attempt_call: Callable[[], T | None], *, attempts: int, base: float = 0.05, cap: float = 2.0
) -> T | None:
    """Call ``attempt_call`` until it returns something other than None, sleeping a full-jitter
    exponential backoff between tries (AWS's advice for unprocessed batch items)."""
    for attempt in range(attempts):
        result = attempt_call()
        if result is not None:
            return result
        if attempt + 1 < attempts:
            telemetry.retried("aws")
            time.sleep(random.uniform(0, min(cap, base * 2**attempt)))
    return None
