"""What an Azure Functions project needs from the App: ``function_app.py``, ``host.json``,
and schedules in NCRONTAB.

``render_project(app, folder)`` writes the two files the Functions host reads (the
deploy packages them with the code). ``host.json`` sets ``routePrefix`` to ``""`` so
the app sees the paths it defines, and the queue settings every trigger shares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...runtime.schedule import Schedule

if TYPE_CHECKING:
    from ...app import App
    from ...handles import BucketHandle

__all__ = ["HOST_JSON_VERSION", "blob_path", "host_json", "ncrontab", "queue_max_attempts", "render_project"]

HOST_JSON_VERSION = "2.0"
EXTENSION_BUNDLE = {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
#: deliveries before a queue message goes to the poison queue when no subscription says
DEFAULT_MAX_DEQUEUE = 5


def ncrontab(schedule: Schedule) -> tuple[str, str | None]:
    """The six-field NCRONTAB expression (``sec min hour day month day-of-week``, UTC) of a
    schedule, and the years it is limited to (NCRONTAB has no year field: the timer
    skips firings outside them), or None.

    ``rate()`` becomes a step that divides its unit (``rate(15 minutes)`` → ``0 */15 * * * *``);
    a rate that does not divide an hour or a day cannot fire at even intervals in NCRONTAB
    and is refused. ``rate(N days)`` steps the day of the month, so it restarts each month.
    """
    if schedule.interval is not None:
        total = int(schedule.interval.total_seconds())
        if total % 86400 == 0:
            days = total // 86400
            if days == 1:
                return "0 0 0 * * *", None
            if days <= 31:
                return f"0 0 0 */{days} * *", None
        elif total % 3600 == 0:
            hours = total // 3600
            if 24 % hours == 0:
                return ("0 0 * * * *" if hours == 1 else f"0 0 */{hours} * * *"), None
        elif total % 60 == 0:
            minutes = total // 60
            if 60 % minutes == 0:
                return ("0 * * * * *" if minutes == 1 else f"0 */{minutes} * * * *"), None
        raise ConfigError(
            f"schedule {schedule.expression!r}: an Azure timer (NCRONTAB) cannot fire at this interval; use a rate "
            "that divides an hour or a day, or a cron() expression"
        )
    assert schedule.cron is not None
    fields = schedule.cron.split()
    if any(ch in fields[2].upper() for ch in "LW"):
        raise ConfigError(f"schedule {schedule.expression!r}: NCRONTAB has no L or W day-of-month")
    years = None if schedule.years in (None, "*") else schedule.years
    # NCRONTAB steps a range or ``*``; EventBridge's ``5/15`` means ``5-59/15``.
    fields = [_step_range(part, top) for part, top in zip(fields, _FIELD_MAX, strict=True)]
    return "0 " + " ".join(fields), years


_FIELD_MAX = (59, 23, 31, 12, 6)


def _step_range(field: str, top: int) -> str:
    return ",".join(re.sub(r"^(\d+)/(\d+)$", rf"\1-{top}/\2", part) for part in field.split(","))


def queue_max_attempts(app: App) -> int:
    """The host's ``maxDequeueCount``: the largest ``max_attempts`` of the app's subscriptions.

    The host has one value for every queue trigger; a subscription that allows fewer
    attempts moves its message to the dead letters itself on its last one.
    """
    return max((sub.max_attempts for sub in app.subscriptions), default=DEFAULT_MAX_DEQUEUE)


def blob_path(handle: BucketHandle) -> str:
    """The blob trigger path of a bucket: ``container/prefix/{name}`` from its ``azblob://`` URL."""
    url = handle.resolved_url()
    if url.scheme != "azblob":
        raise ConfigError(
            f"bucket {handle.resource_name!r} resolves to {url}; an Azure blob trigger needs an azblob:// URL"
        )
    prefix = url.path.strip("/")
    return f"{url.host}/{prefix}/{{name}}" if prefix else f"{url.host}/{{name}}"


def host_json(app: App, *, message_encoding: str | None = None) -> dict[str, Any]:
    """``host.json`` for ``app``: version, extension bundle, no route prefix, queue retries."""
    queues: dict[str, Any] = {"maxDequeueCount": queue_max_attempts(app), "visibilityTimeout": "00:00:10"}
    encoding = message_encoding or _provider_encoding()
    if encoding:
        queues["messageEncoding"] = encoding
    return {
        "version": HOST_JSON_VERSION,
        "extensionBundle": dict(EXTENSION_BUNDLE),
        "extensions": {"http": {"routePrefix": ""}, "queues": queues},
        "logging": {"logLevel": {"default": "Information"}},
    }


def _provider_encoding() -> str | None:
    """How the ``azqueue://`` provider encodes message text (``base64`` or ``none``), if it says."""
    try:
        from . import queues
    except ImportError:
        return None
    value = getattr(queues, "MESSAGE_ENCODING", None)
    return value if isinstance(value, str) else None


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _entry(app: App, entry: str | None) -> tuple[str, str]:
    text = entry or app.config.entry
    if not text:
        raise ConfigError(
            f"{app.name}: render_project needs the app's entry ('module:attribute'); set [app] entry in "
            "overcast.toml or pass entry="
        )
    module, _, attribute = text.partition(":")
    if not _IDENT.match(module) or not (attribute or "app").isidentifier():
        raise ConfigError(f"{app.name}: entry {text!r} is not 'module:attribute'")
    return module, attribute or "app"


def _literal(value: Any, what: str) -> str:
    """``value`` as Python source; only JSON-like values (names, not functions) can be written."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_literal(k, what)}: {_literal(v, what)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    raise ConfigError(f"render_project: {what} must name subscriptions and schedules, not pass {value!r}")


def render_project(app: App, folder: str | Path, *, entry: str | None = None, **options: Any) -> dict[str, Path]:
    """Write ``function_app.py`` and ``host.json`` for ``app`` into ``folder``.

    Args:
        entry: ``module:attribute`` of the App (default: ``[app] entry`` of overcast.toml).
        options: keyword arguments of :func:`~overcast.providers.azure.function_app`
            (``event_grid``, ``blobs``, ...), written into ``function_app.py``; routes
            must be names, not functions. They are checked by building the app first.

    Returns:
        the written files by name.
    """
    from .functions import function_app

    module, attribute = _entry(app, entry)
    for key, value in options.items():
        _literal(value, key)
    built = function_app(app, **options)
    built.get_functions()  # validates names, triggers and bindings as the worker's indexing does
    args = "".join(f", {key}={_literal(value, key)}" for key, value in sorted(options.items()))
    source = (
        f'"""Azure Functions entry of {app.name!r}, generated by Overcast: regenerate it, do not edit."""\n\n'
        "from overcast.providers.azure import function_app\n\n"
        f"from {module} import {attribute} as overcast_app\n\n"
        f"app = function_app(overcast_app{args})\n"
    )
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = {"function_app.py": out / "function_app.py", "host.json": out / "host.json"}
    files["function_app.py"].write_text(source)
    files["host.json"].write_text(json.dumps(host_json(app), indent=2) + "\n")
    return files
