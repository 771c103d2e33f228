"""Find the :class:`~overcast.App` a command serves: ``module:attribute`` or a folder with ``overcast.toml``.

The folder (the one holding ``overcast.toml``, else the current one) goes first on
``sys.path`` so the app's own modules import as they would in its container.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import CONFIG_FILE, load_config
from .errors import ConfigError

if TYPE_CHECKING:
    from .app import App

__all__ = ["create_asgi", "load_app", "parse_entry"]


def parse_entry(entry: str) -> tuple[str, str]:
    """Split ``module:attribute``, raising :class:`ConfigError` if either side is missing."""
    module, sep, attribute = entry.partition(":")
    if not sep or not module.strip() or not attribute.strip():
        raise ConfigError(f"app entry must be 'module:attribute', got {entry!r}")
    return module.strip(), attribute.strip()


def load_app(spec: str | Path | None = None, *, cwd: Path | None = None) -> App:
    """Import and return the App named by ``spec``.

    Args:
        spec: ``module:attribute``, or a folder holding ``overcast.toml`` whose
            ``[app] entry`` names it; the current folder when None.
        cwd: the folder relative names are resolved from (default: the working directory).
    """
    base = (cwd or Path.cwd()).resolve()
    text = str(spec) if spec is not None else ""
    if text and ":" in text and not (base / text).is_dir():
        module, attribute = parse_entry(text)
        return _import_app(module, attribute, base, origin=repr(text))
    folder = (base / text).resolve() if text else base
    if not folder.is_dir():
        raise ConfigError(f"app {text!r}: not a folder, and not 'module:attribute'")
    toml = folder / CONFIG_FILE
    if not toml.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {folder}; pass the app as 'module:attribute' or a folder holding {CONFIG_FILE}"
        )
    config = load_config(toml)
    if not config.entry:
        raise ConfigError(f'{toml}: [app] entry is missing; add entry = "module:attribute" under [app]')
    module, attribute = parse_entry(config.entry)
    return _import_app(module, attribute, folder, origin=f"{toml} [app] entry {config.entry!r}")


def _import_app(module_name: str, attribute: str, folder: Path, *, origin: str) -> App:
    from .app import App

    folder_text = str(folder)
    if folder_text in sys.path:
        sys.path.remove(folder_text)
    sys.path.insert(0, folder_text)
    _forget_if_elsewhere(module_name, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(f"app {origin}: cannot import module {module_name!r} from {folder}") from exc
        if exc.name is not None and not exc.name.startswith("overcast."):
            top = exc.name.partition(".")[0]
            raise ConfigError(
                f"app {origin}: {module_name!r} imports {exc.name!r}, which is not installed in {sys.prefix}; "
                f"install the package that provides it (often: pip install {top}) or add it to the "
                "project's dependencies"
            ) from exc
        raise
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"app {origin}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not isinstance(target, App):
        raise ConfigError(f"app {origin}: {module_name}:{attribute} is a {type(target).__name__}, not an overcast.App")
    return target


def _forget_if_elsewhere(module_name: str, folder: Path) -> None:
    """Drop a module of the same name imported from another folder (another app in this process)."""
    top = module_name.split(".")[0]
    loaded = sys.modules.get(top)
    location = getattr(loaded, "__file__", None) if loaded is not None else None
    if location is None or Path(location).resolve().is_relative_to(folder):
        return
    if not ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def create_asgi() -> object:
    """Uvicorn factory for ``overcast run --workers N``: the ASGI app of the App named by ``OVERCAST_APP``."""
    import os

    folder = os.environ.get("OVERCAST_APP_DIR")
    app = load_app(os.environ.get("OVERCAST_APP") or None, cwd=Path(folder) if folder else None)
    asgi: object = app.asgi
    return asgi
