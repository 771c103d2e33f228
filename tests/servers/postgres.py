"""PostgreSQL from Debian: a throw-away cluster per test process, run as the postgres user
when the tests run as root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import signal
import subprocess
from pathlib import Path

from . import Server, free_port, missing, spawn, workdir


class PostgresServer(Server):
    """Stopped with a fast shutdown (SIGINT): SIGTERM is PostgreSQL's smart shutdown, which
    waits for every client to disconnect, and pools keep connections open to the end."""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                pass
        super().stop()


def _accepts_connections(port: int, user: str) -> bool:
    """Ready when a session opens: the port listens before the server accepts sessions."""
    import psycopg

    try:
        psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def _bindir() -> Path | None:
    for pg_ctl in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True):
        return Path(pg_ctl).parent
    return None


def start_postgres(*, durable: bool = False, port: int | None = None) -> Server:
    """A new cluster; ``durable`` keeps PostgreSQL's own settings (fsync, synchronous commit),
    so a kill -9 loses no committed transaction, for the chaos tests; :func:`restart` brings
    it back on the same port and data."""
    bindir = _bindir()
    if bindir is None:
        missing("PostgreSQL", "apt-get install -y postgresql")
    port = port or free_port()
    data = workdir() / f"pg-{port}"
    fresh = not data.exists()
    data.mkdir(exist_ok=True)
    demote = None
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(data, pg.pw_uid, pg.pw_gid)

        def demote() -> None:
            os.setgid(pg.pw_gid)
            os.setuid(pg.pw_uid)

        user = "postgres"
    if fresh:
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            preexec_fn=demote,
            cwd="/",
        )
    fast = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    server = spawn(
        "postgres",
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(data),
            *([] if durable else fast),
            "-c",
            "max_connections=200",
        ],
        port,
        ready=lambda: _accepts_connections(port, user),
        preexec=demote,
        cwd=Path("/"),
        # Credentials never sit in provider URLs: libpq takes the user from PGUSER.
        server_env={"OVERCAST_TEST_POSTGRES_URL": f"postgresql://127.0.0.1:{port}/postgres", "PGUSER": user},
    )
    return PostgresServer(**vars(server))


def restart(server: Server) -> Server:
    """Start a durable cluster again on its port and data (after a kill -9)."""
    return start_postgres(durable=True, port=server.port)


#: The session fixtures tests/conftest.py makes from this module: fixture name -> start function.
FIXTURES = {"postgres_server": start_postgres}
