"""Provider URLs: ``scheme://name/path?option=value``.

Paths follow SQLAlchemy's convention: ``sqlite:///relative.db`` is relative to the
working directory (or the app's folder, see :meth:`ResourceURL.local_path`) and
``sqlite:////absolute/path.db`` is absolute. Credentials never belong in a URL written
in ``overcast.toml``; a URL a hosting platform hands over in an environment variable
(``DATABASE_URL``, ``REDIS_URL``) may carry them: they are kept apart from the rest and
never shown by ``str()``, ``repr()`` or an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ..errors import ConfigError

__all__ = ["ResourceURL"]

_SECRET_OPTIONS = frozenset({"password", "secret", "key", "token", "account_key", "sas"})


@dataclass(frozen=True)
class ResourceURL:
    """A parsed provider URL.

    Attributes:
        scheme: selects the provider (``dynamodb``, ``sqlite``, ``memory``, ...).
        host: the part after ``//`` up to the next ``/``: usually the table,
            bucket or queue name.
        path: the rest, without its leading ``/`` (``sqlite:///a.db`` → ``a.db``,
            ``sqlite:////abs.db`` → ``/abs.db``).
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
        """The filesystem path of a ``sqlite:`` or ``file:`` URL, made absolute."""
        raw = self.host + ("/" + self.path if self.host and self.path else self.path)
        if not raw:
            raise ConfigError(f"provider URL {self} names no path")
        path = Path(raw)
        if not path.is_absolute():
            path = (self.base_dir or Path.cwd()) / path
        return path

    def option(self, name: str, default: str | None = None) -> str | None:
        return self.options.get(name, default)

    def __str__(self) -> str:
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in self.options.items())
        text = f"{self.scheme}://{quote(self.host)}"
        if self.path:
            text += "/" + quote(self.path)
        return text + (f"?{query}" if query else "")


def hide_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, safe to show or log."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    if "@" not in netloc:
        return url
    return f"{scheme}{sep}***@{netloc.rpartition('@')[2]}{slash}{tail}"
