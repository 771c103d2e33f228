"""The ``overcast`` command: dev, run, doctor, provision.

Parsing and printing only; the work is done by the App, the loader and the dev
server. Imported by the console script alone, so ``import overcast`` never pays
for Typer or Rich.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import ConfigError, MissingDependency, NotFound, OvercastError

if TYPE_CHECKING:
    from .app import App

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="overcast",
    help="Portable serverless Python: serve, check and provision an Overcast app.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _out() -> Console:
    """A console made on use, so each run sees the terminal (and ``COLUMNS``) as it is then."""
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


F = TypeVar("F", bound=Callable[..., Any])

AppArg = Annotated[
    str | None,
    typer.Argument(help="module:attribute, or a folder holding overcast.toml (default: the current folder)."),
]


def _friendly(func: F) -> F:
    """Print an OvercastError as one red line and exit 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OvercastError as exc:
            _err().print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        _out().print(f"overcast {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Portable serverless Python: serve, check and provision an Overcast app."""


@contextlib.contextmanager
def _target(name: str | None) -> Iterator[None]:
    """Make ``name`` the current target (``OVERCAST_TARGET``) for the duration."""
    if name is None:
        yield
        return
    before = os.environ.get("OVERCAST_TARGET")
    os.environ["OVERCAST_TARGET"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OVERCAST_TARGET", None)
        else:
            os.environ["OVERCAST_TARGET"] = before


def _app_env(app_spec: str | None) -> dict[str, str]:
    """The environment that lets a server process (a reloader's child) load the same app."""
    env = {"OVERCAST_APP_DIR": str(Path.cwd())}
    if app_spec:
        env["OVERCAST_APP"] = app_spec
    return env


def _app_folder(app: App, app_spec: str | None) -> Path:
    if app_spec and (Path.cwd() / app_spec).is_dir():
        return (Path.cwd() / app_spec).resolve()
    if app.config.path is not None:
        return app.config.base_dir
    return Path.cwd()


# -- dev and run -------------------------------------------------------------------------


@cli.command()
@_friendly
def dev(
    app: AppArg = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reload: Annotated[bool, typer.Option("--reload/--no-reload", help="Restart when a .py file changes.")] = True,
) -> None:
    """Serve the app locally on embedded providers, delivering messages and schedules in-process."""
    import uvicorn

    from .loader import load_app

    loaded = load_app(app)
    loaded.config.target()  # an unknown OVERCAST_TARGET fails here, before the server starts
    folder = _app_folder(loaded, app)
    os.environ.update(_app_env(app))
    _out().print(
        f"[bold]overcast dev[/] {escape(loaded.name)} on target [cyan]{escape(loaded.target)}[/] "
        f"at http://{host}:{port} — {len(loaded.subscriptions)} subscriber(s), {len(loaded.schedules)} schedule(s)"
        + (f", reloading on changes in {escape(str(folder))}" if reload else ""),
        soft_wrap=True,
    )
    for sub in loaded.subscriptions:
        _out().print(f"  [dim]subscriber[/] {escape(sub.source.resource_name)}/{escape(sub.name)}", soft_wrap=True)
    now = datetime.now(UTC)
    for job in loaded.schedules:
        due = job.schedule.next_after(now).strftime("%Y-%m-%d %H:%M:%S UTC")
        _out().print(
            f"  [dim]schedule[/] {escape(job.name)} {escape(job.schedule.expression)}, next at {due}", soft_wrap=True
        )
    if reload:
        uvicorn.run(
            "overcast.providers.local.devserver:create_dev_asgi",
            factory=True,
            host=host,
            port=port,
            reload=True,
            reload_dirs=[str(folder)],
            reload_includes=["*.py", "overcast.toml"],
            lifespan="on",
            access_log=False,  # the dev server prints each request with its upstream calls
        )
    else:
        from .providers.local.devserver import dev_asgi, watch_requests

        watch_requests(loaded)
        uvicorn.run(dev_asgi(loaded), host=host, port=port, lifespan="on", access_log=False)


def _default_port() -> int:
    raw = os.environ.get("PORT")
    if not raw:
        return 8080
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"PORT must be a number, got {raw!r}") from None


@cli.command()
@_friendly
def run(
    app: AppArg = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "0.0.0.0",
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: $PORT, else 8080).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    with_workers: Annotated[
        bool, typer.Option("--with-workers", help="Also deliver messages and schedules in-process.")
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log each request.")] = False,
) -> None:
    """Serve the app in production (a container's command): no reload, no in-process workers by default."""
    import uvicorn

    from .loader import load_app

    if workers > 1 and with_workers:
        raise ConfigError(
            "--with-workers delivers messages and fires schedules in the server process: with "
            f"--workers {workers} every schedule would fire {workers} times; use --workers 1 with --with-workers"
        )
    listen = port if port is not None else _default_port()
    loaded = load_app(app)
    runtimes = _runtimes(loaded.config.target())
    asgi: Any = loaded.asgi
    if "serve" in runtimes and not with_workers:
        # the cloud's own server (Cloud Run: Pub/Sub pushes, Eventarc events and scheduler calls over HTTP)
        from .resources.registry import load_attribute

        asgi = load_attribute(runtimes["serve"])(loaded)
    options: dict[str, Any] = {
        "host": host,
        "port": listen,
        "access_log": access_log,
        "proxy_headers": True,
        "forwarded_allow_ips": "*",
        "server_header": False,
    }
    if workers > 1:
        os.environ.update(_app_env(app))
        factory = runtimes.get("serve_factory", "overcast.loader:create_asgi")
        uvicorn.run(factory, factory=True, workers=workers, **options)
        return
    if with_workers:
        from .providers.local.devserver import dev_asgi

        asgi = dev_asgi(loaded)
    uvicorn.run(asgi, **options)


def _runtimes(target: Any) -> dict[str, str]:
    """The runtime entry points of the cloud the target names (or its resources agree on)."""
    from .resources.registry import family_of_cloud

    family = family_of_cloud(target.cloud)
    return dict(family.runtimes) if family else {}


# -- doctor ------------------------------------------------------------------------------


@dataclass
class _Check:
    kind: str
    name: str
    url: str
    status: str
    ok: bool
    warning: bool = False


async def _ping(kind: str, name: str, url: Any, timeout: float) -> tuple[bool, str]:
    from .resources.registry import open_resource

    resource = open_resource(kind, url, name=name)
    try:
        await asyncio.wait_for(resource.ping(), timeout)
        return True, "reachable"
    except TimeoutError:
        return False, f"no answer in {timeout:g}s"
    finally:
        with contextlib.suppress(Exception):
            await resource.aclose()


async def _check_target(app: App, target: str, timeout: float) -> list[_Check]:
    from .resources.registry import resolve

    checks: list[_Check] = []
    for handle in app.resources.values():
        kind, name = handle.kind, handle.resource_name
        try:
            url = app.config.url_for(kind, name, app=app.name, target=target)
        except ConfigError as exc:
            checks.append(_Check(kind, name, "—", str(exc), ok=False))
            continue
        try:
            resolve(kind, url.scheme, resource=name)
            ok, status = await _ping(kind, name, url, timeout)
        except MissingDependency as exc:
            _, hint, install = str(exc).partition("run: ")
            status = f"not checked: {install}" if hint else str(exc)
            checks.append(_Check(kind, name, str(url), status, ok=True, warning=True))
            continue
        except NotFound as exc:
            ok, status = False, f"{exc} (run: overcast provision {target})"
        except OvercastError as exc:
            ok, status = False, str(exc)
        except Exception as exc:
            ok, status = False, f"{type(exc).__name__}: {exc}"
        checks.append(_Check(kind, name, str(url), status, ok=ok))
    return checks


def _cloud_of(app: App, target: str) -> tuple[str | None, str | None]:
    """The target's cloud (named or inferred), or the error saying why it has none."""
    try:
        return app.config.target(target).cloud, None
    except ConfigError as exc:
        return None, str(exc)


@cli.command()
@_friendly
def doctor(
    app: AppArg = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each resource to answer.")] = 5.0,
) -> None:
    """For each target, every resource's provider URL and whether it is reachable now."""
    from .config import DEFAULT_TARGET
    from .loader import load_app

    loaded = load_app(app)
    current = loaded.target
    targets = list(dict.fromkeys([current, DEFAULT_TARGET, *loaded.config.targets]))
    failed = 0
    for target in targets:
        checks = asyncio.run(_check_target(loaded, target, timeout))
        title = f"target [bold]{escape(target)}[/]" + (" (current)" if target == current else "")
        cloud, problem = _cloud_of(loaded, target)
        title += f", cloud {escape(cloud)}" if cloud else ""
        if problem:
            _err().print(f"[red]{escape(problem)}[/]")
            failed += 1
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("kind", "name", "provider", "status"):
            table.add_column(column, overflow="fold")
        for check in checks:
            style = "yellow" if check.warning else ("green" if check.ok else "red")
            mark = "!" if check.warning else ("✓" if check.ok else "✗")
            table.add_row(
                check.kind, escape(check.name), escape(check.url), f"[{style}]{mark} {escape(check.status)}[/]"
            )
            failed += not check.ok
        if not checks:
            table.add_row("—", "—", "—", "no resources declared")
        _out().print(table)
    if failed:
        _err().print(f"[red]{failed} resource check(s) failed[/]")
        raise typer.Exit(1)
    _out().print("[green]every resource is reachable[/]")


# -- provision ---------------------------------------------------------------------------


@cli.command()
@_friendly
def provision(
    target: Annotated[
        str | None, typer.Argument(help="Target to provision (default: $OVERCAST_TARGET or local).")
    ] = None,
    app: Annotated[
        str | None, typer.Option("--app", help="module:attribute, or a folder holding overcast.toml.")
    ] = None,
) -> None:
    """Create what backs every resource of TARGET, idempotently (dev, tests, emulators)."""
    from .loader import load_app

    loaded = load_app(app)
    with _target(target):
        name = loaded.config.target().name
        loaded.reset()
        try:
            created = asyncio.run(loaded.provision())
        finally:
            loaded.reset()
    table = Table(title=f"provisioned target [bold]{escape(name)}[/]", title_justify="left")
    for column in ("kind", "name", "provider"):
        table.add_column(column, overflow="fold")
    for kind, rname, url in created:
        table.add_row(kind, escape(rname), escape(url))
    _out().print(table)


def main() -> None:
    """Entry point of the ``overcast`` console script."""
    cli()
