"""Every error Overcast raises, in one family.

Callers catch these and never a cloud SDK's own exceptions: each provider maps its
SDK's errors onto this tree and keeps the original as ``__cause__``.

    OvercastError
    ├── ConfigError            overcast.toml, targets, URLs, declarations
    ├── MissingDependency      a provider's extra is not installed
    └── ProviderError          raised by an operation on a resource
        ├── NotFound           the resource (table, bucket, queue) or object is absent
        ├── Conflict           a conditional write lost: the item moved or exists
        ├── Unavailable        the service cannot be reached now; retrying may help
        ├── Throttled          the service asked us to slow down; retrying later helps
        ├── InvalidArgument    bad input: key, value, size past a limit, expression
        ├── PermissionDenied   credentials lack the right
        └── NotSupported       this provider cannot do that operation
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "InvalidArgument",
    "MissingDependency",
    "NotFound",
    "NotSupported",
    "OvercastError",
    "PermissionDenied",
    "ProviderError",
    "Throttled",
    "Unavailable",
]


class OvercastError(Exception):
    """Base of every error Overcast raises."""


class ConfigError(OvercastError):
    """The configuration or a declaration is wrong; raised before anything is written."""


class MissingDependency(OvercastError, ImportError):
    """A provider needs a package that is not installed; the message says what to install."""


class ProviderError(OvercastError):
    """An operation on a resource failed.

    Attributes:
        resource: the resource's name or URL, when known.
    """

    def __init__(self, message: str, *, resource: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource


class NotFound(ProviderError):
    """The object, or the table/bucket/queue behind the resource, does not exist."""


class Conflict(ProviderError):
    """A conditional write failed: the item changed, or exists when it must not."""


class Unavailable(ProviderError):
    """The service cannot be reached now; the operation may succeed if retried."""


class Throttled(ProviderError):
    """The service rejected the call for rate; retry after backing off."""


class InvalidArgument(ProviderError, ValueError):
    """The input breaks a rule: a key, a value, a size limit, an expression."""


class PermissionDenied(ProviderError):
    """The credentials in use are not allowed to do this."""


class NotSupported(ProviderError):
    """This provider cannot perform the operation (declared in its capabilities)."""


def rewrapped(exc: ProviderError) -> ProviderError:
    """A copy of ``exc`` (same class, message and resource) for a provider to raise ``from exc``
    when a call it wraps raised an error it had already mapped: the message says its prefix
    once, and the chain keeps both (raising ``exc`` from itself would lose the SDK's error)."""
    copy = type(exc).__new__(type(exc))
    copy.args = exc.args
    copy.__dict__.update(exc.__dict__)
    return copy
