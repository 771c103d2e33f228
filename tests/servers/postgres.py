"""PostgreSQL from Debian: a throw-away cluster per test process, run as the postgres user
when the tests run as root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
from pathlib import Path

from . import Server, free_port, missing, spawn, workdir


def _bindir() -> Path | None:
    for pg_ctl in sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True):
        return Path(pg_ctl).parent
    return None


def start_postgres() -> Server:
    bindir = _bindir()
    if bindir is None:
        missing("PostgreSQL", "apt-get install -y postgresql")
    port = free_port()
    data = workdir() / f"pg-{port}"
    data.mkdir()
    demote = None
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(data, pg.pw_uid, pg.pw_gid)

        def demote() -> None:
            os.setgid(pg.pw_gid)
            os.setuid(pg.pw_uid)

        user = "postgres"
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True, preexec_fn=demote, cwd="/",
    )
    return spawn(
        "postgres",
        [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data),
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
        port,
        preexec=demote,
        cwd=Path("/"),
        # Credentials never sit in provider URLs: libpq takes the user from PGUSER.
        server_env={"OVERCAST_TEST_POSTGRES_URL": f"postgresql://127.0.0.1:{port}/postgres", "PGUSER": user},
    )
