"""Secrets from environment variables and a ``.env`` file: ``env://`` or ``env://?file=config/.env``.

``get("mail-api-key")`` looks, in order, for the variable ``MAIL_API_KEY`` (the name
upper-cased, every character but letters and digits turned into ``_``), then for
the variable named exactly ``mail-api-key``, first in the process environment and
then in the ``.env`` file. The environment wins, so a deploy can override what a
developer keeps in ``.env``. The file (default: ``.env`` in the app's folder, else
the working directory) is read again whenever the store's cache expires, so edits
are picked up. Values never appear in errors or logs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

from ...errors import NotFound, PermissionDenied, ProviderError
from ...resources.secrets import SecretStore
from ...resources.url import ResourceURL

__all__ = ["EnvSecretStore", "variable_names"]

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def variable_names(name: str) -> list[str]:
    """The variable names tried for the secret ``name``, in order."""
    upper = _NOT_ALNUM.sub("_", name).upper()
    return [upper] if upper == name else [upper, name]


class EnvSecretStore(SecretStore):
    """Secrets from the process environment, then from a ``.env`` file (python-dotenv syntax)."""

    capabilities: ClassVar[frozenset[str]] = frozenset()
    offload: ClassVar[bool] = False

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url if url is not None else ResourceURL("env"), name=name)
        option = self.location.option("file")
        self.explicit_file = bool(option)
        path = Path(option or ".env")
        if not path.is_absolute():
            path = (self.location.base_dir or Path.cwd()) / path
        self.env_file: Path = path

    def _file_values(self) -> dict[str, str | None]:
        try:
            from dotenv import dotenv_values

            if not self.env_file.is_file():
                return {}
            return dict(dotenv_values(self.env_file))
        except PermissionError as exc:
            raise PermissionDenied(f"{self.name}: cannot read {self.env_file}", resource=self.name) from exc
        except OSError as exc:
            raise ProviderError(
                f"{self.name}: cannot read {self.env_file}: {exc.strerror}", resource=self.name
            ) from exc

    def _fetch_blocking(self, name: str) -> str:
        names = variable_names(name)
        for variable in names:
            value = os.environ.get(variable)
            if value is not None:
                return value
        values = self._file_values()
        for variable in names:
            found = values.get(variable)
            if found is not None:
                return found
        tried = " or ".join(names)
        where = f"{self.env_file}" + ("" if self.env_file.is_file() else " (which does not exist)")
        raise NotFound(
            f"{self.name}: no secret {name!r}: set the environment variable {tried}, or add it to {where}",
            resource=self.name,
        )

    async def _fetch(self, name: str) -> str:
        return self._fetch_blocking(name)

    def _ping_blocking(self) -> None:
        if self.explicit_file and not self.env_file.is_file():
            raise NotFound(f"{self.name}: the .env file {self.env_file} does not exist", resource=self.name)
