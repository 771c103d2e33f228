"""The Google error table: each google-api-core / google-auth exception becomes the right
overcast.errors type, naming the resource and keeping the original as __cause__."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as g
from google.auth import exceptions as auth

from overcast import errors
from overcast.providers.gcp._client import google_error


@pytest.mark.parametrize(
    ("google", "ours"),
    [
        (g.NotFound("no such document"), errors.NotFound),
        (g.AlreadyExists("exists"), errors.Conflict),
        (g.PreconditionFailed("generation"), errors.Conflict),
        (g.FailedPrecondition("update time"), errors.Conflict),
        (g.Aborted("transaction"), errors.Conflict),
        (g.TooManyRequests("slow down"), errors.Throttled),
        (g.ResourceExhausted("quota"), errors.Throttled),
        (g.PermissionDenied("iam"), errors.PermissionDenied),
        (g.Forbidden("iam"), errors.PermissionDenied),
        (g.Unauthenticated("token"), errors.PermissionDenied),
        (auth.DefaultCredentialsError("no credentials"), errors.PermissionDenied),
        (g.InvalidArgument("bad"), errors.InvalidArgument),
        (g.BadRequest("bad"), errors.InvalidArgument),
        (g.ServiceUnavailable("down"), errors.Unavailable),
        (g.DeadlineExceeded("slow"), errors.Unavailable),
        (g.RetryError("gave up", cause=None), errors.Unavailable),
        (g.InternalServerError("oops"), errors.Unavailable),
        (requests.ConnectionError("refused"), errors.Unavailable),
        (auth.TransportError("refused"), errors.Unavailable),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.__name__,
)
def test_google_errors_map_onto_overcast_errors(google: BaseException, ours: type[errors.ProviderError]) -> None:
    error = google_error(google, "kv 'users': Firestore collection users, key 'k'", resource="users")
    assert type(error) is ours and error.resource == "users"
    assert str(error).startswith("kv 'users': Firestore collection users, key 'k': ")
    try:
        raise error from google
    except errors.ProviderError as raised:
        assert raised.__cause__ is google


def test_unknown_errors_stay_provider_errors() -> None:
    error = google_error(RuntimeError("odd"), "bucket 'b'", resource="b")
    assert type(error) is errors.ProviderError and "RuntimeError: odd" in str(error)
    ours = errors.Conflict("already mapped", resource="x")
    try:
        raise ours from RuntimeError("the SDK's")
    except errors.Conflict:
        pass
    again = google_error(ours, "x", resource="x")  # raised ``from ours``: the chain keeps the SDK's error
    assert type(again) is errors.Conflict and str(again) == "already mapped" and again.resource == "x"
    assert again is not ours and isinstance(ours.__cause__, RuntimeError)
