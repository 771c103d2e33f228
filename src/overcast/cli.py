"""The ``overcast`` command: dev, run, doctor, provision, repair, cost, plan, deploy, destroy.

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
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import ConfigError, NotFound, OvercastError

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
    typer.Argument(
        metavar="APP", help="module:attribute, or a folder holding overcast.toml (default: the current folder)."
    ),
]


TargetOpt = Annotated[
    str | None,
    typer.Option("--target", "-t", help="Target to use (default: $OVERCAST_TARGET, else local).", show_default=False),
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


def _load(app_spec: str | None, command: str) -> App:
    """Load the app, or say how to name it when the argument is a target's name (the old form)."""
    from .loader import load_app

    try:
        return load_app(app_spec)
    except ConfigError:
        if app_spec and _names_a_target(app_spec):
            raise ConfigError(
                f"{app_spec!r} is a target, not an app: the app comes first and the target is an option, "
                f"as for every command: overcast {command} [APP] --target {app_spec}"
            ) from None
        raise


def _names_a_target(text: str) -> bool:
    """Whether ``text`` is no folder or module but a target of the current folder's overcast.toml."""
    import tomllib

    from .config import CONFIG_FILE, DEFAULT_TARGET

    if ":" in text or Path(text).exists():
        return False
    if text == DEFAULT_TARGET:
        return True
    try:
        data = tomllib.loads((Path.cwd() / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    targets = data.get("targets")
    return isinstance(targets, dict) and text in targets


def _check_port(host: str, port: int) -> None:
    """Refuse, before any banner, a port that another process listens on."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use (another overcast dev or server?); "
                    f"pass another one, e.g. --port {port + 1}, or stop what listens there"
                ) from None
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --host and --port"
            ) from None


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
    target: TargetOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reload: Annotated[bool, typer.Option("--reload/--no-reload", help="Restart when a .py file changes.")] = True,
    console: Annotated[
        bool, typer.Option("--console/--no-console", help="Serve the local console at /_overcast/.")
    ] = True,
) -> None:
    """Serve the app locally on embedded providers, delivering messages and schedules in-process."""
    with _target(target):
        loaded = _load(app, "dev")
        loaded.config.target()  # an unknown target fails here, before the server starts
        _check_port(host, port)
        folder = _app_folder(loaded, app)
        os.environ.update(_app_env(app))
        console = console and _console_available()
        os.environ["OVERCAST_DEV_CONSOLE"] = "1" if console else "0"
        _dev_banner(loaded, host, port, folder if reload else None)
        if console:
            _console_banner(host, port)
        _serve_dev(loaded, host, port, folder if reload else None)


def _dev_banner(loaded: App, host: str, port: int, reload_folder: Path | None) -> None:
    _out().print(
        f"[bold]overcast dev[/] {escape(loaded.name)} on target [cyan]{escape(loaded.target)}[/] "
        f"at http://{host}:{port} — {len(loaded.subscriptions)} subscriber(s), {len(loaded.schedules)} schedule(s)"
        + (f", reloading on changes in {escape(str(reload_folder))}" if reload_folder else ""),
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


def _serve_dev(loaded: App, host: str, port: int, reload_folder: Path | None) -> None:
    import uvicorn

    if reload_folder is not None:
        uvicorn.run(
            "overcast.providers.local.devserver:create_dev_asgi",
            factory=True,
            host=host,
            port=port,
            reload=True,
            reload_dirs=[str(reload_folder)],
            reload_includes=["*.py", "overcast.toml"],
            lifespan="on",
            access_log=False,  # the dev server prints each request with its upstream calls
            timeout_graceful_shutdown=3,  # an open console feed must not hold up Ctrl-C or a reload
        )
        return
    from .providers.local.devserver import dev_asgi, watch_requests

    served = dev_asgi(loaded, console=os.environ.get("OVERCAST_DEV_CONSOLE") == "1")
    watch_requests(loaded, also=served.console.events.request if served.console else None)
    uvicorn.run(served, host=host, port=port, lifespan="on", access_log=False, timeout_graceful_shutdown=3)


def _console_available() -> bool:
    """Whether the console's extra is installed; if not, say how to get it and serve without."""
    import importlib.util

    missing = [name for name in ("starlette", "jinja2") if importlib.util.find_spec(name) is None]
    if missing:
        _err().print(
            f"[yellow]console off[/]: it needs {', '.join(missing)}; pip install 'overcast[console]'", soft_wrap=True
        )
    return not missing


def _console_banner(host: str, port: int) -> None:
    from .providers.local.console.guard import is_loopback_host

    shown = host if is_loopback_host(host) else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown
    note = "" if is_loopback_host(host) else " (answers this machine only)"
    _out().print(f"  [dim]console[/] http://{shown}:{port}/_overcast/{note}", soft_wrap=True)


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
    target: TargetOpt = None,
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

    if workers > 1 and with_workers:
        raise ConfigError(
            "--with-workers delivers messages and fires schedules in the server process: with "
            f"--workers {workers} every schedule would fire {workers} times; use --workers 1 with --with-workers"
        )
    listen = port if port is not None else _default_port()
    with _target(target):
        loaded = _load(app, "run")
        runtimes = _runtimes(loaded.config.target())
        _check_port(host, listen)
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
        uvicorn.run(_production_asgi(loaded, runtimes, with_workers), **options)


def _production_asgi(loaded: App, runtimes: dict[str, str], with_workers: bool) -> Any:
    """The app's routes, the cloud's own server (Cloud Run's endpoints), or the dev server's workers too."""
    if with_workers:
        from .providers.local.devserver import dev_asgi

        return dev_asgi(loaded)
    if "serve" in runtimes:
        # the cloud's own server (Cloud Run: Pub/Sub pushes, Eventarc events and scheduler calls over HTTP)
        from .resources.registry import load_attribute

        return load_attribute(runtimes["serve"])(loaded)
    return loaded.asgi


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
    checks: list[_Check] = []
    for handle in app.resources.values():
        kind, name = handle.kind, handle.resource_name
        url_on = getattr(handle, "url_on", None)  # a backlog's queue resolves itself
        try:
            url = url_on(target) if url_on else app.config.url_for(kind, name, app=app.name, target=target)
        except ConfigError as exc:
            checks.append(_Check(kind, name, "—", str(exc), ok=False))
            continue
        if url.scheme == "replicated":
            checks.extend(await _check_replicated(kind, name, url, target, timeout))
        elif url_on is not None and kind == "queue":
            checks.append(await _check_backlog(await _check_one(kind, name, url, target, timeout), url, timeout))
        else:
            checks.append(await _check_one(kind, name, url, target, timeout))
    return checks


async def _check_backlog(check: _Check, url: Any, timeout: float) -> _Check:
    """A reachable backlog's row says what waits in it: items, dead letters, the oldest's age."""
    from .resilience.backlog import Backlog
    from .resources.registry import open_resource

    if not check.ok or check.warning:
        return check
    queue = open_resource("queue", url, name=check.name)
    try:
        status = await asyncio.wait_for(Backlog(queue, check.name).status(), timeout)
    except Exception as exc:
        return _Check(check.kind, check.name, check.url, f"{check.status}; backlog not read: {exc}", ok=True)
    finally:
        queue.close()
    age = status["oldest_age_s"]
    said = f"backlog: {_count(status['depth'])} waiting, {_count(status['dead_letters'])} dead letters"
    said += f", oldest {age:.0f} s" if age is not None else ""
    return _Check(check.kind, check.name, check.url, f"{check.status}; {said}", ok=True)


async def _check_replicated(kind: str, name: str, url: Any, target: str, timeout: float) -> list[_Check]:
    """A row for the replicated resource and one per member, with the log entries waiting beside it."""
    from .resilience.health import inspect
    from .resilience.spec import ReplicaSpec
    from .resources.registry import open_resource

    spec = ReplicaSpec.from_url(url)
    members = [
        await _check_one(kind, f"{name} · {role}", m, target, timeout)
        for role, m in zip(spec.roles, spec.members, strict=True)
    ]
    summary = f"replicated, ack={spec.ack}, {spec.mode}"
    if all(m.ok and not m.warning for m in members):
        store = open_resource(kind, url, name=name)
        try:
            rows = await asyncio.wait_for(inspect(store), timeout * len(members))
            depths = ", ".join(f"{r['role']} {r.get('log_depth', '?')}" for r in rows)
            summary += f"; change log entries waiting: {depths}"
            stale = [r["role"] for r in rows if r.get("stale")]
            if stale:
                summary += f"; stale (away past the tombstone horizon; resynced when reached): {', '.join(stale)}"
        except Exception as exc:
            summary += f"; the change logs could not be read: {exc}"
        finally:
            store.close()
    shown = f"replicated://{name}"
    head = _Check(kind, name, shown, summary, ok=any(m.ok for m in members))
    return [head, *members]


async def _check_one(kind: str, name: str, url: Any, target: str, timeout: float) -> _Check:
    from .resources.registry import install_hint, missing_module, resolve

    if missing_module(kind, url.scheme) is not None:  # the extra, not whether some client half works
        return _Check(kind, name, str(url), f"not checked: {install_hint(kind, url.scheme)}", ok=True, warning=True)
    try:
        resolve(kind, url.scheme, resource=name)
        ok, status = await _ping(kind, name, url, timeout)
    except NotFound as exc:
        ok, status = False, f"{exc} (run: overcast provision --target {target})"
    except Exception as exc:
        install = _missing_extra(exc, kind, url.scheme)
        if install is not None:
            return _Check(kind, name, str(url), f"not checked: {install}", ok=True, warning=True)
        ok, status = False, str(exc) if isinstance(exc, OvercastError) else f"{type(exc).__name__}: {exc}"
    return _Check(kind, name, str(url), status, ok=ok)


def _missing_extra(exc: BaseException, kind: str, scheme: str) -> str | None:
    """The install line when ``exc``, or what it was raised from, is a module that is not installed.

    One rule for every family, however its provider reports it: a ``MissingDependency``
    from the registry, one raised later by the provider's client, or a plain
    ``ModuleNotFoundError`` wrapped in a provider error.
    """
    from .resources.registry import install_hint

    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; a cycle must not loop
        if seen is None:
            return None
        if isinstance(seen, ImportError):
            return install_hint(kind, scheme) or f"install the module {seen.name or str(seen)!r}"
        seen = seen.__cause__ or seen.__context__
    return None


def _cloud_of(app: App, target: str) -> tuple[str | None, str | None]:
    """The target's cloud (named or inferred), or the error saying why it has none."""
    try:
        return app.config.target(target).cloud, None
    except ConfigError as exc:
        return None, str(exc)


def _doctor_targets(app: App, targets: list[str] | None, all_targets: bool) -> list[str]:
    from .config import DEFAULT_TARGET

    if all_targets and targets:
        raise ConfigError("pass --target or --all-targets, not both")
    if all_targets:
        return list(dict.fromkeys([app.target, DEFAULT_TARGET, *app.config.targets]))
    chosen = list(dict.fromkeys(targets or [app.target]))
    for name in chosen:
        if name != DEFAULT_TARGET and name not in app.config.targets:
            app.config.target(name)  # raises: unknown target, with the known ones
    return chosen


def _doctor_table(app: App, target: str, checks: list[_Check]) -> Table:
    title = f"target [bold]{escape(target)}[/]" + (" (current)" if target == app.target else "")
    cloud, _ = _cloud_of(app, target)
    title += f", cloud {escape(cloud)}" if cloud else ""
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("kind", "name", "provider", "status"):
        table.add_column(column, overflow="fold")
    for check in checks:
        style = "yellow" if check.warning else ("green" if check.ok else "red")
        mark = "!" if check.warning else ("✓" if check.ok else "✗")
        table.add_row(check.kind, escape(check.name), escape(check.url), f"[{style}]{mark} {escape(check.status)}[/]")
    if not checks:
        table.add_row("—", "—", "—", "no resources declared")
    return table


@cli.command()
@_friendly
def doctor(
    app: AppArg = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Target to check; repeat for several (default: the current one)."),
    ] = None,
    all_targets: Annotated[
        bool, typer.Option("--all-targets", help="Check local and every target in overcast.toml.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each resource to answer.")] = 5.0,
) -> None:
    """Every resource's provider URL and whether it answers now. Exit 0: all reachable; 1: not."""
    loaded = _load(app, "doctor")
    failed = not_checked = 0
    for name in _doctor_targets(loaded, target, all_targets):
        checks = asyncio.run(_check_target(loaded, name, timeout))
        _, problem = _cloud_of(loaded, name)
        if problem:
            _err().print(f"[red]{escape(problem)}[/]", soft_wrap=True)
            failed += 1
        _out().print(_doctor_table(loaded, name, checks))
        failed += sum(not check.ok for check in checks)
        not_checked += sum(check.warning for check in checks)
    if failed:
        _err().print(f"[red]{failed} resource check(s) failed[/]")
        raise typer.Exit(1)
    skipped = f" ({not_checked} not checked: extra not installed)" if not_checked else ""
    _out().print(f"[green]every resource is reachable[/]{skipped}")


# -- provision ---------------------------------------------------------------------------


@cli.command()
@_friendly
def provision(
    app: AppArg = None,
    target: TargetOpt = None,
    old_app: Annotated[str | None, typer.Option("--app", hidden=True)] = None,
) -> None:
    """Create what backs every resource of the target, idempotently (dev, tests, emulators)."""
    if old_app is not None:
        named = f" --target {app}" if app else ""
        raise ConfigError(
            "the app is provision's argument now, as for dev and doctor, and the target an option: "
            f"overcast provision {old_app}{named}"
        )
    with _target(target):
        loaded = _load(app, "provision")
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


@cli.command()
@_friendly
def repair(
    app: AppArg = None,
    target: TargetOpt = None,
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", "-r", help="A replicated resource to repair (repeatable); default: every one."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what drifted; change nothing.")] = False,
) -> None:
    """Compare every member of the target's replicated resources, repair what drifted, and
    sweep tombstones older than the horizon that every member agrees on."""
    from .resilience.repair import repair as repair_store
    from .resources.registry import open_resource

    with _target(target):
        loaded = _load(app, "repair")
        name = loaded.config.target().name
        stores = _replicated_stores(loaded, name, resource or [])
        table = Table(title=f"repaired target [bold]{escape(name)}[/]" + (" (dry run)" if dry_run else ""))
        changed = "dry run: would repair" if dry_run else "repaired"
        for column in ("resource", "member", "items read", changed, "tombstones swept"):
            table.add_column(column, overflow="fold")
        for kind, rname, url in stores:
            store = open_resource(kind, url, name=rname)
            try:
                report = asyncio.run(repair_store(store, dry_run=dry_run))
            finally:
                store.close()
            for member in store.members:
                role = member.role
                cells = (report.read[role], report.repaired[role] + report.removed[role], report.swept[role])
                table.add_row(escape(rname), escape(f"{role} {member.url}"), *map(str, cells))
    _out().print(table)


def _replicated_stores(app: App, target: str, wanted: list[str]) -> list[tuple[str, str, Any]]:
    """(kind, name, URL) of each replicated kv and bucket of ``app`` on the current target
    (or of ``wanted``)."""
    found = []
    for handle in app.resources.values():
        if handle.kind not in ("kv", "bucket") or (wanted and handle.resource_name not in wanted):
            continue
        url = handle.resolved_url()
        if url.scheme == "replicated":
            found.append((handle.kind, handle.resource_name, url))
        elif wanted:
            raise ConfigError(
                f"{handle.kind} {handle.resource_name!r} is not replicated on target {target!r} (its provider is "
                f"{url}); replicate it in overcast.toml: {handle.kind}.NAME = {{ primary = ..., replicas = [...] }}"
            )
    missing = sorted(set(wanted) - {name for _, name, _ in found})
    if missing:
        raise ConfigError(f"no kv or bucket resource named {', '.join(map(repr, missing))} in the app")
    if not found:
        raise ConfigError(f"target {target!r} has no replicated resource: nothing to repair")
    return found


# -- cost --------------------------------------------------------------------------------


def _declared(app: App) -> tuple[dict[str, str], dict[str, int]]:
    """The app's resources (name → kind) and how many subscriptions each topic has."""
    declared = {name: handle.kind for name, handle in app.resources.items()}
    subscriptions: dict[str, int] = {}
    for sub in app.subscriptions:
        name = sub.source.resource_name
        subscriptions[name] = subscriptions.get(name, 0) + 1
    return declared, subscriptions


def _qty(item: Any) -> str:
    def fmt(x: float) -> str:
        return f"{x:,.0f}" if x >= 1000 else f"{x:,.2f}" if x >= 1 or x == 0 else f"{x:.3g}"

    return fmt(item.quantity) + (f" ({fmt(item.free_units)} free)" if item.free_units else "")


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:,.4f}"


def _cost_table(title: str) -> Table:
    """A Rich table on a terminal; plain columns (no box drawing) when the output is piped."""
    from rich import box

    return Table(title=title, title_justify="left", expand=False, box=box.HEAVY_HEAD if _out().is_terminal else None)


def _plan_table(plan: Any, title: str) -> Table:
    table = _cost_table(title)
    for column in ("resource", "service", "line", "quantity", "monthly"):
        table.add_column(column, overflow="fold", justify="right" if column in ("quantity", "monthly") else "left")
    for item in plan.compute:
        table.add_row("compute", escape(plan.cloud), _line(item), _qty(item), _money(item.cost))
    for placement in plan.placements:
        where = f"{placement.offer.service} ({placement.offer.cloud})"
        for item in placement.items:
            table.add_row(escape(placement.resource), escape(where), _line(item), _qty(item), _money(item.cost))
    for name in plan.missing:
        table.add_row(escape(name), "[red]no priced service[/]", "", "", "")
    table.add_row("[bold]total[/]", "", "", "", f"[bold]{_money(plan.total)}[/]")
    return table


#: Marks a line item or a cell priced with a figure that could not be confirmed against its source.
UNCONFIRMED = "*"


def _line(item: Any) -> str:
    return escape(item.label) + (f" [yellow]{UNCONFIRMED}[/]" if not item.price.confirmed else "")


def _unconfirmed(plans: Any) -> list[str]:
    """The price keys not confirmed against their source that any of ``plans`` used."""
    items = [i for p in plans if p is not None for i in (*p.compute, *(i for pl in p.placements for i in pl.items))]
    return sorted({i.price.key for i in items if not i.price.confirmed})


def _plan_json(plan: Any) -> dict[str, Any]:
    def item(i: Any) -> dict[str, Any]:
        return {
            "label": i.label,
            "quantity": i.quantity,
            "free": i.free_units,
            "unit": i.price.unit,
            "rate": i.price.rate,
            "per": i.price.per,
            "cost": round(i.cost, 6),
            "source": i.price.source,
            "confirmed": i.price.confirmed,
        }

    return {
        "cloud": plan.cloud,
        "total": round(plan.total, 6),
        "compute": [item(i) for i in plan.compute],
        "resources": {
            p.resource: {
                "service": p.offer.service,
                "cloud": p.offer.cloud,
                "scheme": p.offer.scheme,
                "total": round(p.total, 6),
                "items": [item(i) for i in p.items],
            }
            for p in plan.placements
        },
        "missing": list(plan.missing),
    }


def _target_schemes(loaded: App, target: str, workload: Any) -> tuple[dict[str, str], Any]:
    """Each resource's scheme on ``target``; a replicated one is its primary's, and its replicas'
    clouds become the resource's replicas in the workload (priced with the replication traffic)."""
    from dataclasses import replace

    from .resilience.spec import ReplicaSpec
    from .resources.registry import family_of_scheme

    schemes: dict[str, str] = {}
    usages = dict(workload.resources)
    for name, handle in loaded.resources.items():
        url = loaded.config.url_for(handle.kind, name, app=loaded.name, target=target)
        if url.scheme != "replicated":
            schemes[name] = url.scheme
            continue
        spec = ReplicaSpec.from_url(url)
        schemes[name] = spec.primary.scheme
        clouds = [f.cloud for m in spec.replicas if (f := family_of_scheme(m.scheme)) is not None and f.cloud]
        if name in usages and clouds:
            usages[name] = replace(usages[name], replicas=tuple(dict.fromkeys(clouds)))
    return schemes, replace(workload, resources=usages)


def _configured(loaded: App, target: str | None, workload: Any, free_tier: bool) -> Any:
    """The target's own placement, when a target is named and runs on a priced cloud."""
    from .cost.engine import configured

    if target is None:
        return None
    cloud = loaded.config.target(target).cloud
    if cloud is None:
        return None
    schemes, workload = _target_schemes(loaded, target, workload)
    plan = configured(workload, schemes, cloud, free_tier=free_tier)
    for name in plan.missing:
        _err().print(
            f"[yellow]target {escape(target)}: {escape(name)} uses {escape(schemes[name])}://, "
            "which no installed family prices; its cost is left out[/]",
            soft_wrap=True,
        )
    return plan


# -- plan, deploy, destroy -----------------------------------------------------------------


def _plan(app: str | None, target: str | None, command: str) -> Path:
    """Make and write the plan of ``target``; print what was written and the package's size."""
    import time

    from .deploy.plan import make_plan, write_plan

    if not target:
        _need_target(app, command)
    started = time.perf_counter()
    with _target(target):
        loaded = _load(app, command)
        plan = make_plan(loaded, target)
    folder = write_plan(plan)
    elapsed = time.perf_counter() - started
    resources = plan.resource_count
    shown = os.path.relpath(folder) if folder.is_relative_to(Path.cwd()) else str(folder)
    _out().print(
        f"plan of [bold]{escape(plan.deployment.app)}[/] on target [bold]{escape(target)}[/]: "
        f"{resources} resources in {escape(shown)} ({elapsed:.2f}s)"
    )
    package = plan.package
    _out().print(f"package.zip: {package.size / 1e6:.2f} MB, {len(package.files)} files, sha256 {package.sha256[:16]}…")
    for warning in plan.warnings():
        _err().print(f"[yellow]warning:[/] {escape(warning)}")
    return folder


def _need_target(app: str | None, command: str) -> NoReturn:
    if app and _names_a_target(app):
        raise ConfigError(
            f"{app!r} is a target, not an app: the app comes first and the target is an option, "
            f"as for every command: overcast {command} [APP] --target {app}"
        )
    raise ConfigError(f"{command} needs a target: overcast {command} [APP] --target TARGET")


@cli.command()
@_friendly
def cost(
    app: AppArg = None,
    target: TargetOpt = None,
    profile: Annotated[Path | None, typer.Option("--profile", "-p", help="Workload profile (TOML).")] = None,
    requests: Annotated[float | None, typer.Option(help="Requests a month.", show_default=False)] = None,
    duration_ms: Annotated[float | None, typer.Option(help="Run time of a request (ms).", show_default=False)] = None,
    memory_mb: Annotated[float | None, typer.Option(help="Memory of an instance (MB).", show_default=False)] = None,
    response_bytes: Annotated[int | None, typer.Option(help="Bytes answered a request.", show_default=False)] = None,
    free_tier: Annotated[bool, typer.Option("--free-tier/--no-free-tier", help="Count free tiers.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    lines: Annotated[bool, typer.Option("--lines", help="Every line item of every cloud.")] = False,
    chart: Annotated[
        Path | None, typer.Option(help="Also draw cost against request volume (a .png or .svg file).")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="First read current prices from the clouds' price APIs.")
    ] = False,
    from_metrics: Annotated[
        Path | None, typer.Option(help="Operations per request measured by telemetry (an OTLP/JSON export).")
    ] = None,
) -> None:
    """What the app costs a month on each cloud, and the cheapest placement per resource."""
    import json

    from .cost import compare

    if refresh:
        _refresh_prices()
    loaded = _load(app, "cost")
    declared, subscriptions = _declared(loaded)
    flags = {"requests": requests, "duration_ms": duration_ms, "memory_mb": memory_mb, "response_bytes": response_bytes}
    workload = _workload(profile, from_metrics, declared, subscriptions, flags)
    result = compare(workload, free_tier=free_tier)
    mine = _configured(loaded, target, workload, free_tier)
    if chart is not None:
        from .cost.chart import chart as draw
        from .cost.chart import series, volumes_around

        drawn = draw(
            series(workload, volumes_around(workload.requests), free_tier=free_tier),
            chart,
            title=f"{loaded.name}: monthly cost by request volume",
        )
        _err().print(f"chart written to {escape(str(drawn))}")
    if as_json:
        typer.echo(json.dumps(_cost_json(loaded.name, workload, result, mine, target, free_tier), indent=2))
        return
    _print_cost(loaded.name, workload, result, mine, target, lines)


def _cost_json(name: str, workload: Any, result: Any, mine: Any, target: str | None, free_tier: bool) -> Any:
    """``overcast cost --json``: every plan, the mix and the saving, for machines."""
    single = result.cheapest_single
    return {
        "app": name,
        "requests": workload.requests,
        "workload": {"duration_ms": workload.duration_ms, "memory_mb": workload.memory_mb},
        "free_tier": free_tier,
        "clouds": [_plan_json(p) for p in result.clouds],
        "cheapest_single_cloud": single.cloud if single else None,
        "mix": _plan_json(result.mix) if result.mix else None,
        "saving": round(result.saving, 6),
        "prices_retrieved": result.retrieved,
        "target": {"name": target, **_plan_json(mine)} if mine else None,
    }


def _workload(
    profile: Path | None,
    from_metrics: Path | None,
    declared: dict[str, str],
    subscriptions: dict[str, int],
    flags: dict[str, Any],
) -> Any:
    """The profile's workload, with the operations telemetry measured when ``--from-metrics`` names an export."""
    from .cost.metrics import merge_measured, read_metrics
    from .cost.profile import read_profile, workload_from

    data = read_profile(profile)
    if from_metrics is not None:
        measured = read_metrics(from_metrics)
        data = merge_measured(data, measured, declared)
        _err().print(
            f"measured: {measured.invocations:,.0f} invocations; operations per request "
            f"from {escape(str(from_metrics))}"
        )
        _print_measured(measured)
        for call, count in sorted(measured.unpriced.items()):
            _err().print(f"[yellow]not priced: {escape(call)} ({count:,.0f} calls)[/]")
    return workload_from(data, declared, subscriptions=subscriptions, overrides=flags)


def _print_measured(measured: Any) -> None:
    """What else the export measured: run time, memory, sizes (each replaces the profile's)."""
    found = []
    if measured.duration_ms is not None:
        found.append(f"{measured.duration_ms:,.1f} ms a request")
    if measured.memory_mb is not None:
        found.append(f"{measured.memory_mb:g} MB (peak memory, rounded up to 128 MB)")
    found += [f"{escape(name)} {size:,.0f} bytes an item" for name, size in sorted(measured.sizes.items())]
    if found:
        _err().print("measured: " + "; ".join(found), soft_wrap=True)


def _refresh_prices() -> None:
    """Read current prices from every family that can, and say what changed and what could not be read."""
    from .cost import pricings
    from .cost.refresh import refresh_all
    from .resources.registry import load_attribute

    for done in refresh_all([load_attribute(p.refresh) for p in pricings() if p.refresh is not None]):
        if done.skipped:
            _err().print(f"[yellow]{escape(done.family)}: not refreshed: {escape(done.skipped)}[/]", soft_wrap=True)
            continue
        kept = f"; kept as shipped: {', '.join(done.kept)}" if done.kept else ""
        _err().print(
            f"{escape(done.family)}: {len(done.updated)} price(s) changed{escape(kept)} → {escape(str(done.path))}",
            soft_wrap=True,
        )


def _summary_table(result: Any, mine: Any, target: str | None) -> Table:
    """One row per resource (and compute), one column per plan: the monthly cost and the service."""
    plans = [(f"target {target}", mine)] if mine is not None else []
    plans += [(f"all on {p.cloud}", p) for p in sorted(result.clouds, key=lambda p: p.total)]
    plans += [("cheapest mix", result.mix)] if result.mix is not None else []
    table = _cost_table("monthly cost per resource")
    table.add_column("resource")
    for title, _ in plans:
        table.add_column(escape(title), justify="right", overflow="fold")
    compute = [
        f"{_money(sum(i.cost for i in p.compute))}"
        + (f" [yellow]{UNCONFIRMED}[/]" if any(not i.price.confirmed for i in p.compute) else "")
        + f"\n[dim]{escape(p.cloud)}[/]"
        for _, p in plans
    ]
    table.add_row("compute + egress", *compute)
    names = list(dict.fromkeys(pl.resource for _, p in plans for pl in p.placements))
    for name in names:
        cells = []
        for _, plan in plans:
            found = next((pl for pl in plan.placements if pl.resource == name), None)
            where = f"{found.offer.service} ({found.offer.cloud})" if found else ""
            mark = f" [yellow]{UNCONFIRMED}[/]" if found and any(not i.price.confirmed for i in found.items) else ""
            cells.append(f"{_money(found.total)}{mark}\n[dim]{escape(where)}[/]" if found else "[red]not priced[/]")
        table.add_row(escape(name), *cells)
    table.add_row("[bold]total[/]", *[f"[bold]{_money(p.total)}[/]" for _, p in plans])
    return table


def _print_cost(name: str, workload: Any, result: Any, mine: Any, target: str | None, lines: bool) -> None:
    out = _out()
    out.print(
        f"[bold]{escape(name)}[/]: {workload.requests:,.0f} requests a month, {workload.duration_ms:g} ms, "
        f"{workload.memory_mb:g} MB; prices of {', '.join(sorted(set(result.retrieved.values())))}"
    )
    out.print(_summary_table(result, mine, target))
    if lines:
        if mine is not None:
            out.print(_plan_table(mine, f"target [bold]{escape(target or '')}[/] as configured ({mine.cloud})"))
        for plan in sorted(result.clouds, key=lambda p: p.total):
            out.print(_plan_table(plan, f"all on [bold]{escape(plan.cloud)}[/]"))
    if result.mix is not None:
        out.print(_plan_table(result.mix, f"cheapest mix (compute on [bold]{escape(result.mix.cloud)}[/])"))
        single = result.cheapest_single
        if single is not None:
            out.print(
                f"cheapest single cloud: {single.cloud} {_money(single.total)}; the mix saves "
                f"{_money(result.saving)} a month"
            )
    unconfirmed = _unconfirmed([mine, *result.clouds, result.mix])
    if unconfirmed:
        out.print(
            f"[yellow]{UNCONFIRMED}[/] priced with figures not confirmed against their source (see the note of "
            f"each in the price file, or --json): {', '.join(unconfirmed)}",
            soft_wrap=True,
        )


@cli.command()
@_friendly
def plan(app: AppArg = None, target: TargetOpt = None) -> None:
    """Write the target's Terraform JSON and the package it deploys to .overcast/build/TARGET/."""
    _plan(app, target, "plan")


AutoApprove = Annotated[bool, typer.Option("--auto-approve", help="Do not ask before changing anything (for CI).")]


@cli.command()
@_friendly
def deploy(app: AppArg = None, target: TargetOpt = None, auto_approve: AutoApprove = False) -> None:
    """Plan, then run tofu/terraform init and apply on .overcast/build/TARGET/."""
    from .deploy.runner import apply

    folder = _plan(app, target, "deploy")
    code = apply(folder, auto_approve=auto_approve)
    if code:
        raise typer.Exit(code)


@cli.command()
@_friendly
def destroy(app: AppArg = None, target: TargetOpt = None, auto_approve: AutoApprove = False) -> None:
    """Run tofu/terraform destroy on the target's plan (written first if there is none)."""
    from .deploy.plan import BUILD_DIR
    from .deploy.runner import destroy as run_destroy

    if not target:
        _need_target(app, "destroy")
    with _target(target):
        loaded = _load(app, "destroy")
        folder = loaded.config.base_dir / BUILD_DIR / target
    if not (folder / "main.tf.json").is_file():
        folder = _plan(app, target, "destroy")
    code = run_destroy(folder, auto_approve=auto_approve)
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point of the ``overcast`` console script."""
    cli()


# -- backlog -----------------------------------------------------------------------------

backlog_cli = typer.Typer(
    help="The backlogs of non-critical subscribers and deferrable functions: depth, items, re-drive, purge.",
    no_args_is_help=True,
)
cli.add_typer(backlog_cli, name="backlog")

BacklogOpt = Annotated[
    str | None,
    typer.Option("--name", "-n", help="Only this backlog (as `list` names it: topic/subscription, queue, function)."),
]
DeadOpt = Annotated[bool, typer.Option("--dead", help="The dead letters instead of the backlog itself.")]


def _backlogs(app_spec: str | None, only: str | None, command: str) -> tuple[App, dict[str, Any]]:
    from .runtime.deferral import app_backlogs

    loaded = _load(app_spec, f"backlog {command}")
    found = app_backlogs(loaded)
    if only is not None:
        if only not in found:
            known = ", ".join(sorted(found)) or "none: the app has no critical=False subscriber or deferrable function"
            raise ConfigError(f"{loaded.name}: no backlog {only!r}; backlogs: {known}")
        found = {only: found[only]}
    return loaded, found


@backlog_cli.command("list")
@_friendly
def backlog_list(app: AppArg = None, target: TargetOpt = None, name: BacklogOpt = None) -> None:
    """Each backlog: its queue, items waiting, dead letters, and the age of the oldest item."""
    with _target(target):
        loaded, found = _backlogs(app, name, "list")
        rows = asyncio.run(_backlog_rows(found))
        loaded.reset()
    table = Table(title=f"backlogs of [bold]{escape(loaded.name)}[/]", title_justify="left")
    for column in ("for", "queue", "waiting", "dead letters", "oldest"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    _out().print(table)


async def _backlog_rows(found: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for label, backlog in found.items():
        status = await backlog.status()
        age = "-" if status["oldest_age_s"] is None else f"{status['oldest_age_s']:.0f} s"
        rows.append((label, backlog.queue.name, _count(status["depth"]), _count(status["dead_letters"]), age))
    return rows


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def time_since(stamp: Any) -> float:
    return max(0.0, datetime.now(UTC).timestamp() - float(stamp)) if isinstance(stamp, (int, float)) else 0.0


@backlog_cli.command("show")
@_friendly
def backlog_show(
    app: AppArg = None,
    target: TargetOpt = None,
    name: BacklogOpt = None,
    dead: DeadOpt = False,
    limit: Annotated[int, typer.Option(help="Items to show per backlog.")] = 10,
) -> None:
    """The oldest items of each backlog (what was parked, when and why)."""
    with _target(target):
        loaded, found = _backlogs(app, name, "show")
        shown = {label: asyncio.run(backlog.peek(limit, dead=dead)) for label, backlog in found.items()}
        loaded.reset()
    for label, items in shown.items():
        table = Table(title=f"{escape(label)}{' (dead letters)' if dead else ''}", title_justify="left")
        for column in ("item", "id", "age", "why", "what"):
            table.add_column(column, overflow="fold")
        for item in items:
            body = item.body if isinstance(item.body, dict) else {}
            work = body.get("work", {})
            what = work.get("event", {}).get("data") if body.get("kind") == "event" else work.get("arguments")
            event_id = work.get("event", {}).get("id", "") if body.get("kind") == "event" else ""
            age = f"{time_since(body.get('parked_at')):.0f} s"
            table.add_row(
                escape(item.id),
                escape(str(event_id)),
                age,
                escape(str(body.get("reason", ""))),
                escape(str(what)[:200]),
            )
        _out().print(table)


@backlog_cli.command("redrive")
@_friendly
def backlog_redrive(app: AppArg = None, target: TargetOpt = None, name: BacklogOpt = None) -> None:
    """Move dead letters back into their backlog, to be replayed again."""
    with _target(target):
        loaded, found = _backlogs(app, name, "redrive")
        moved = {label: asyncio.run(backlog.redrive()) for label, backlog in found.items()}
        loaded.reset()
    for label, count in moved.items():
        _out().print(f"{escape(label)}: {count} item(s) re-driven")


@backlog_cli.command("purge")
@_friendly
def backlog_purge(
    app: AppArg = None,
    target: TargetOpt = None,
    name: Annotated[str, typer.Option("--name", "-n", help="The backlog to empty (as `list` names it).")] = "",
    dead: DeadOpt = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete the items.")] = False,
) -> None:
    """Delete every item of one backlog (or of its dead letters with --dead)."""
    if not name or not yes:
        raise ConfigError("purge deletes parked work for good: name the backlog with --name and confirm with --yes")
    with _target(target):
        loaded, found = _backlogs(app, name, "purge")
        removed = asyncio.run(found[name].purge(dead=dead))
        loaded.reset()
    _out().print(f"{escape(name)}: {removed} item(s) deleted{' from the dead letters' if dead else ''}")
