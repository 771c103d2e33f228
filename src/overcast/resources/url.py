"""Provider URLs: ``scheme://name/path?option=value``.

Paths in ``sqlite:`` URLs follow SQLAlchemy's convention: ``sqlite:///relative.db`` is
relative to the working directory (or the app's folder, see :meth:`ResourceURL.local_path`)
and ``sqlite:////absolute/path.db`` is absolute. ``file:`` URLs mean what they mean
everywhere else (RFC 8089, fsspec, obstore): ``file:///srv/data`` is absolute, and
``file://data/avatars`` (no third slash) is relative, as fsspec reads it. Credentials never belong in a URL written
in ``overcast.toml``; a URL a hosting platform hands over in an environment variable
(``DATABASE_URL``, ``REDIS_URL``) may carry them: they are kept apart from the rest and
never shown by ``str()``, ``repr()`` or an error.

Providers read their options through the typed readers (:meth:`ResourceURL.option_int`,
``option_float``, ``option_seconds``, ``option_bool``, ``option_choice``): an option
given empty (``?ttl=``) is the same as one left out, and a bad value is a
:class:`ConfigError` naming the resource, the option, the value given, what is allowed
and the URL (without credentials).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from ..errors import ConfigError
from .records import field, record

# pathlib and urllib.parse are imported where a URL is parsed, printed or made a path: a
# resource declared (not yet opened) needs neither.
if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ResourceURL", "checked_table"]

_SECRET_OPTIONS = frozenset({"password", "secret", "key", "token", "account_key", "sas"})
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(ms|s|m|h|d)?$", re.IGNORECASE)
_DURATION_FORMS = "seconds, or a number with a unit: 500ms, 30s, 5m, 2h, 1d"
# What str() leaves as written (RFC 3986's characters allowed there): ':' before a port and
# IPv6 brackets in the host; '@' and ':' in a path; an endpoint URL in an option's value. A
# '/', '?', '#', '@' or '%' in a host, '?' or '#' in a path, '&' or '+' in the query stay
# encoded, so parsing str() gives the same URL back.
_SUB_DELIMS = "!$'()*,;"
_HOST_SAFE = _SUB_DELIMS + "&+=:[]"
_PATH_SAFE = _SUB_DELIMS + "&+=:@/"
_QUERY_SAFE = _SUB_DELIMS + ":@/"


@record(frozen=True)
class ResourceURL:
    """A parsed provider URL.

    Attributes:
        scheme: selects the provider (``dynamodb``, ``sqlite``, ``memory``, ...).
        host: the part after ``//`` up to the next ``/``: usually the table,
            bucket or queue name.
        path: the rest, without its leading ``/`` (``sqlite:///a.db`` → ``a.db``,
            ``sqlite:////abs.db`` → ``/abs.db``; :meth:`local_path` reads ``file:`` URLs
            as RFC 8089 does).
        options: the query string, one value per option.
        base_dir: folder that relative paths are resolved against.
    """

    scheme: str
    host: str = ""
    path: str = ""
    options: dict[str, str] = field(default_factory=dict)
    base_dir: Path | None = None
    #: from a URL given by the environment only (see the module's docstring); never shown
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str, *, base_dir: Path | None = None, credentials: bool = False) -> ResourceURL:
        """Parse ``url``; raise :class:`ConfigError` naming the URL if it is malformed.

        With ``credentials``, a ``user:password@`` part is accepted and kept in
        ``username``/``password`` (for URLs read from the environment)."""
        if not isinstance(url, str) or "://" not in url:
            raise ConfigError(f"provider URL {url!r} is not of the form scheme://...")
        raw, url = url, hide_userinfo(url)  # every message below shows ``url``, never the credentials
        scheme, rest = raw.split("://", 1)
        if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
            raise ConfigError(f"provider URL {url!r} has an invalid scheme {scheme!r}")
        from urllib.parse import parse_qsl, unquote, urlsplit

        if _mangled_userinfo(raw):
            raise ConfigError(
                f"provider URL {url!r}: its user:password@ part holds a '/', '?' or '#'; "
                "percent-encode it (%2F, %3F, %23)"
            )

        parts = urlsplit("x://" + rest)
        netloc = parts.netloc
        username = password = None
        if "@" in netloc:
            if not credentials:
                raise ConfigError(
                    f"provider URL {url!r} carries credentials; give them through an environment "
                    'variable (kv.NAME = "${DATABASE_URL}"), the provider\'s variables or its credential chain'
                )
            userinfo, _, netloc = netloc.rpartition("@")
            user, has_password, secret = userinfo.partition(":")
            username, password = unquote(user) or None, unquote(secret) if has_password else None
        options: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in options:
                raise ConfigError(f"provider URL {url!r} repeats the option {name!r}")
            if name.lower() in _SECRET_OPTIONS:
                raise ConfigError(
                    f"provider URL {url!r} carries a secret in option {name!r}; "
                    "use the provider's environment variables instead"
                )
            options[name] = value
        path = unquote(parts.path)
        path = path[1:] if path.startswith("/") else path
        return cls(scheme.lower(), unquote(netloc), path, options, base_dir, username, password)

    @property
    def has_credentials(self) -> bool:
        return self.username is not None or self.password is not None

    def local_path(self) -> Path:
        """The filesystem path of a ``sqlite:`` or ``file:`` URL, made absolute (relative
        paths against ``base_dir``, else the working directory)."""
        if self.scheme == "file" and self.host in ("", "localhost"):
            raw = "/" + self.path.lstrip("/") if self.path else ""  # RFC 8089: file:///srv/x is /srv/x
        else:
            raw = self.host + ("/" + self.path if self.host and self.path else self.path)
        if not raw:
            raise ConfigError(f"provider URL {self} names no path")
        from pathlib import Path

        path = Path(raw)
        if not path.is_absolute():
            path = (self.base_dir or Path.cwd()) / path
        return path

    def option(self, name: str, default: str | None = None) -> str | None:
        return self.options.get(name, default)

    # -- typed readers: each returns ``default`` when the option is absent or empty --------

    @overload
    def option_int(
        self,
        name: str,
        default: int,
        *,
        minimum: int | None = ...,
        maximum: int | None = ...,
        unit: str = ...,
        resource: str | None = ...,
    ) -> int: ...
    @overload
    def option_int(
        self,
        name: str,
        default: None,
        *,
        minimum: int | None = ...,
        maximum: int | None = ...,
        unit: str = ...,
        resource: str | None = ...,
    ) -> int | None: ...
    def option_int(
        self,
        name: str,
        default: int | None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
        unit: str = "",
        resource: str | None = None,
    ) -> int | None:
        """Option ``name`` as a whole number in ``[minimum, maximum]`` (``unit`` names what it counts)."""
        raw = self._given(name)
        if raw is None:
            return default
        try:
            value: int | None = int(raw.strip())
        except ValueError:
            value = None
        if value is None or not _within(value, minimum, maximum):
            raise self._refused(name, raw, _allowed("whole number", unit, minimum, maximum), resource)
        return value

    @overload
    def option_float(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = ...,
        maximum: float | None = ...,
        positive: bool = ...,
        unit: str = ...,
        resource: str | None = ...,
    ) -> float: ...
    @overload
    def option_float(
        self,
        name: str,
        default: None,
        *,
        minimum: float | None = ...,
        maximum: float | None = ...,
        positive: bool = ...,
        unit: str = ...,
        resource: str | None = ...,
    ) -> float | None: ...
    def option_float(
        self,
        name: str,
        default: float | None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
        unit: str = "",
        resource: str | None = None,
    ) -> float | None:
        """Option ``name`` as a finite number in ``[minimum, maximum]``, above 0 if ``positive``."""
        raw = self._given(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not _within(value, minimum, maximum, positive=positive):
            raise self._refused(name, raw, _allowed("number", unit, minimum, maximum, positive=positive), resource)
        return value

    @overload
    def option_seconds(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = ...,
        maximum: float | None = ...,
        positive: bool = ...,
        resource: str | None = ...,
    ) -> float: ...
    @overload
    def option_seconds(
        self,
        name: str,
        default: None,
        *,
        minimum: float | None = ...,
        maximum: float | None = ...,
        positive: bool = ...,
        resource: str | None = ...,
    ) -> float | None: ...
    def option_seconds(
        self,
        name: str,
        default: float | None,
        *,
        minimum: float | None = 0.0,
        maximum: float | None = None,
        positive: bool = False,
        resource: str | None = None,
    ) -> float | None:
        """Option ``name`` as a duration in seconds: ``30``, ``1.5``, or with a unit
        (``500ms``, ``30s``, ``5m``, ``2h``, ``1d``), in ``[minimum, maximum]``."""
        raw = self._given(name)
        if raw is None:
            return default
        found = _DURATION.match(raw.strip())
        value = math.nan if found is None else float(found[1]) * _UNITS[(found[2] or "s").lower()]
        if not _within(value, minimum, maximum, positive=positive):
            allowed = _allowed("duration", "seconds", minimum, maximum, positive=positive, ranged_only=True)
            raise self._refused(name, raw, f"{allowed} ({_DURATION_FORMS})", resource)
        return value

    def option_bool(self, name: str, default: bool, *, resource: str | None = None) -> bool:
        """Option ``name`` as true (``true``, ``1``, ``yes``, ``on``) or false (``false``, ``0``, ``no``, ``off``)."""
        raw = self._given(name)
        if raw is None:
            return default
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise self._refused(name, raw, "true or false (or 1/0, yes/no, on/off)", resource)

    @overload
    def option_choice(self, name: str, choices: Sequence[str], default: str, *, resource: str | None = ...) -> str: ...
    @overload
    def option_choice(
        self, name: str, choices: Sequence[str], default: None, *, resource: str | None = ...
    ) -> str | None: ...
    def option_choice(
        self, name: str, choices: Sequence[str], default: str | None, *, resource: str | None = None
    ) -> str | None:
        """Option ``name`` as one of ``choices`` (matched ignoring case; returned as spelled there)."""
        raw = self._given(name)
        if raw is None:
            return default
        word = raw.strip().lower()
        for choice in choices:
            if choice.lower() == word:
                return choice
        quoted = [repr(choice) for choice in choices]
        allowed = " or ".join(quoted) if len(quoted) <= 2 else "one of " + ", ".join(quoted)
        raise self._refused(name, raw, allowed, resource)

    def _given(self, name: str) -> str | None:
        raw = self.options.get(name)
        return None if raw is None or not raw.strip() else raw

    def _refused(self, name: str, raw: str, allowed: str, resource: str | None) -> ConfigError:
        who = f"{resource}: " if resource else ""
        return ConfigError(f"{who}option {name} must be {allowed}, got {raw!r} in {self}")

    def __str__(self) -> str:
        """The URL as a user writes it (``redis://cache.internal:6379/0``), never its credentials:
        only what would be read back differently is percent-encoded."""
        from urllib.parse import quote

        query = "&".join(
            f"{quote(k, safe=_QUERY_SAFE)}={quote(v, safe=_QUERY_SAFE + '=')}" for k, v in self.options.items()
        )
        text = f"{self.scheme}://{quote(self.host, safe=_HOST_SAFE)}"
        if self.path:
            text += "/" + quote(self.path, safe=_PATH_SAFE)
        return text + (f"?{query}" if query else "")


def hide_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, and the values of options that
    name a secret (``password=``, ``sas=``, ...) by ``***``: safe to show or log.

    A password holding ``/``, ``?`` or ``#`` that was not percent-encoded ends the URL's
    authority early; when a ``:`` comes before the first ``@``, everything up to the last ``@``
    is hidden (a port followed by a path holding ``@`` is hidden too: shown too little, never
    too much)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        rest = "***@" + rest[len(netloc.rpartition("@")[0]) + 1 :]
    elif "@" in rest and ":" in rest.partition("@")[0]:
        rest = "***@" + rest.rpartition("@")[2]
    return scheme + sep + _SECRET_VALUE.sub(r"\1***", rest)


#: ``name=value`` of an option named as a secret, in a query
_SECRET_VALUE = re.compile(r"([?&](?:" + "|".join(sorted(_SECRET_OPTIONS)) + r")=)[^&#]*", re.IGNORECASE)


def _mangled_userinfo(url: str) -> bool:
    """Whether ``url``'s ``user:password@`` holds a ``/``, ``?`` or ``#`` that was not
    percent-encoded (so ``urlsplit`` would take the password for a host, port and path)."""
    rest = url.partition("://")[2]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc or "@" not in rest:
        return False
    before = rest.partition("@")[0]
    if ":" not in netloc:
        return False
    port = netloc.rpartition(":")[2]
    return not port.isdigit() and ":" in before


def _within(value: float, minimum: float | None, maximum: float | None, *, positive: bool = False) -> bool:
    if not math.isfinite(value) or (positive and value <= 0):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _allowed(
    kind: str,
    unit: str,
    minimum: float | None,
    maximum: float | None,
    *,
    positive: bool = False,
    ranged_only: bool = False,
) -> str:
    """What an option may be, in words: ``a positive whole number of bytes``, ``a number from 0 to 1``.

    With ``ranged_only``, ``unit`` is named only after a range (``a duration of at most 900 seconds``)."""
    if kind == "whole number" and minimum == 1 and maximum is None:
        positive, minimum = True, None
    if positive and minimum is not None and minimum <= 0:
        minimum = None
    text = ("a positive " if positive else "a ") + kind
    of = f" {unit}" if unit else ""
    if minimum is not None and maximum is not None:
        return f"{text} from {_number(minimum)} to {_number(maximum)}{of}"
    if minimum is not None and not (ranged_only and minimum == 0):
        return f"{text} of at least {_number(minimum)}{of}"
    if maximum is not None:
        return f"{text} of at most {_number(maximum)}{of}"
    return text if ranged_only or not unit else f"{text} of {unit}"


def checked_table(raw: object, where: str, known: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """A settings table (``where`` names it, e.g. ``[targets.aws.function]``) whose keys are
    ``known``, each value of its types (a boolean is never a number), as URL options are
    checked; an error names the key and what it takes."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    for key, value in raw.items():
        types = known.get(key)
        if types is None:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        if isinstance(value, bool) or not isinstance(value, types):
            named = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise ConfigError(f"{where} {key} must be a {named}, got {value!r}")
    return dict(raw)
