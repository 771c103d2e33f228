"""What the SQLite providers share: opening a file, its pragmas, its durability, the map
of sqlite3's errors onto :mod:`overcast.errors`, busy handling, and connections across
threads and ``fork``.

Every file is in WAL mode (readers never block the writer). Durability is one setting,
the URL option ``synchronous``:

* ``full`` (the default): every commit is synced to disk before the call returns, so a
  write that was acknowledged survives a crash of the process and of the machine
  (power loss, kernel panic). This is Overcast's promise: an acknowledged write is never
  lost.
* ``normal``: SQLite syncs at checkpoints only. An acknowledged write still survives a
  crash of the process, but a power loss may roll back the last commits. Puts are
  several times faster where a sync is slow (``benchmarks/kv_sqlite.py``).

Several processes may share a file (``overcast run --workers N``, several ``overcast
dev``). A call that finds another connection holding the lock waits for it, up to the
URL option ``timeout`` (default :data:`DEFAULT_TIMEOUT`), then ends as it would alone
(success or ``Conflict``): SQLite's busy handler waits for most locks, and
:meth:`SQLiteFile.run` tries again, with backoff, what SQLite refuses without waiting
(switching a new file to WAL, a read meeting a WAL reset). Only a lock held past the
deadline is ``Unavailable``.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

from ...errors import Conflict, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.url import ResourceURL

__all__ = [
    "DEFAULT_TIMEOUT",
    "SYNCHRONOUS",
    "ProcessConnection",
    "SQLiteFile",
    "ThreadConnections",
    "busy",
]

#: Seconds a call waits for another connection's lock before it fails as ``Unavailable``
#: (the URL option ``timeout``): long enough for a queue of writers each syncing a commit
#: on a slow, busy disk (a lock is held for one commit), yet bounded, so that a file held
#: by a stuck process is reported.
DEFAULT_TIMEOUT = 30.0
#: Backoff between tries of what SQLite refused without waiting: doubling, with jitter.
_BACKOFF_FIRST = 0.001
_BACKOFF_MOST = 0.05

T = TypeVar("T")
#: The values of the ``synchronous`` option; the first is the default.
SYNCHRONOUS = ("full", "normal")

_UNAVAILABLE = frozenset({"SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL"})
_DENIED = frozenset({"SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"})


def busy(exc: sqlite3.Error) -> bool:
    """The statement could not take the lock (another writer holds it) and changed nothing."""
    code = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    return code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "database is busy" in text


def _wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL mode unless it is already (a switch takes an exclusive lock,
    for which SQLite does not wait: the caller tries again)."""
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


class SQLiteFile:
    """The SQLite file behind a resource: where it is, how it is opened, how its errors read.

    Attributes:
        path: the file, absolute.
        synchronous: ``"full"`` or ``"normal"``, from the URL option (see the module).
    """

    def __init__(self, location: ResourceURL, resource: str) -> None:
        self.path = location.local_path()
        self.resource = resource
        self.synchronous = location.option_choice("synchronous", SYNCHRONOUS, SYNCHRONOUS[0], resource=resource)
        self.timeout = location.option_seconds("timeout", DEFAULT_TIMEOUT, positive=True, resource=resource)

    def connect(
        self, wait: bool = True, setup: Callable[[sqlite3.Connection], object] | None = None
    ) -> sqlite3.Connection:
        """A new autocommit connection with the pragmas, creating the file's folder if missing,
        and ``setup(conn)`` done (making the schema; tried again while busy).

        Its statements wait up to :attr:`timeout` for another connection's lock, or, with
        ``wait=False``, not at all (its setting up waits all the same)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.os_error(exc) from exc
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        try:
            self.run(conn, lambda: _wal(conn))
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            if setup is not None:
                self.run(conn, lambda: setup(conn))
            if not wait:
                conn.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def run(self, conn: sqlite3.Connection, call: Callable[[], T], key: str | None = None) -> T:
        """``call()`` on ``conn``, again while another connection holds the lock, up to
        :attr:`timeout`; sqlite3's errors raised as :meth:`error` says.

        ``call`` must change nothing when it fails busy: one statement, or a transaction
        rolled back (:meth:`transaction`)."""
        started = time.monotonic()
        try:
            return call()
        except sqlite3.Error as exc:
            return self.again(exc, conn, call, key, started)

    def again(
        self,
        exc: sqlite3.Error,
        conn: sqlite3.Connection,
        call: Callable[[], T],
        key: str | None = None,
        started: float | None = None,
    ) -> T:
        """After ``call()`` failed with ``exc``: if busy, try it again with backoff until
        :attr:`timeout` after ``started`` (default: now); raise the mapped error otherwise."""
        if not busy(exc):
            raise self.error(exc, key) from exc
        deadline = (time.monotonic() if started is None else started) + self.timeout
        delay = _BACKOFF_FIRST
        try:
            while deadline - time.monotonic() > delay:
                time.sleep(random.uniform(delay / 2, delay))
                delay = min(2 * delay, _BACKOFF_MOST)
                left = deadline - time.monotonic()  # the busy handler waits no longer than that
                conn.execute(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
                try:
                    return call()
                except sqlite3.Error as retry_exc:
                    if not busy(retry_exc):
                        raise self.error(retry_exc, key) from retry_exc
                    exc = retry_exc
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        raise self.error(exc, key) from exc

    @contextlib.contextmanager
    def transaction(self, conn: sqlite3.Connection, key: str | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (``BEGIN IMMEDIATE``, waiting up to :attr:`timeout`),
        committed if the block ends normally, rolled back if it (or the commit) raises; errors
        mapped. The block holds the write lock: it never meets a busy error."""
        self.run(conn, lambda: conn.execute("BEGIN IMMEDIATE"), key)
        with self.mapped(key):
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def error(self, exc: sqlite3.Error, key: str | None = None) -> ProviderError:
        """``exc`` as the :mod:`overcast.errors` exception it means, naming the resource and file."""
        about = f"{self.resource}: SQLite {self.path}" + (f", key {key!r}" if key is not None else "")
        code = getattr(exc, "sqlite_errorname", "")
        text = str(exc).lower()
        name = self.resource
        if busy(exc):
            return Unavailable(
                f"{about}: stayed locked by another connection for the deadline of {self.timeout:g} s "
                f"(the URL option timeout): {exc}",
                resource=name,
            )
        if isinstance(exc, sqlite3.IntegrityError):
            return Conflict(f"{about}: {exc}", resource=name)
        if code in _DENIED or "readonly" in text or "read-only" in text:
            return PermissionDenied(f"{about}: not writable: {exc}", resource=name)
        if code in _UNAVAILABLE or "unable to open" in text or "disk i/o" in text:
            return Unavailable(f"{about}: cannot use the file: {exc}", resource=name)
        if "no such table" in text:
            return NotFound(f"{about}: {exc}", resource=name)
        if isinstance(exc, sqlite3.OperationalError):
            return ProviderError(f"{about}: {exc}", resource=name)
        return ProviderError(f"{about}: not a usable SQLite database: {exc}", resource=name)

    def os_error(self, exc: OSError) -> ProviderError:
        message = f"{self.resource}: cannot create the folder of {self.path}: {exc}"
        if isinstance(exc, PermissionError):
            return PermissionDenied(message, resource=self.resource)
        return Unavailable(message, resource=self.resource)

    @contextlib.contextmanager
    def mapped(self, key: str | None = None) -> Iterator[None]:
        """Raise sqlite3's errors in the block as :meth:`error` says."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.error(exc, key) from exc


# -- connections, and what becomes of them in a forked child ---------------------------

_holders: weakref.WeakSet[ThreadConnections | ProcessConnection] = weakref.WeakSet()
#: A forked child's inherited connections: closing one could checkpoint or drop the
#: parent's WAL, so they are kept, unused, for the life of the child.
_inherited: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    """A forked child starts with fresh connections; it never touches the parent's."""
    for holder in list(_holders):
        holder._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ThreadConnections:
    """A connection per thread and slot, opened by ``open(wait)`` on first use.

    A thread reads its connection as ``local.SLOT`` (fast: no call) and calls :meth:`open`
    when it has none yet.
    """

    def __init__(self, open: Callable[[bool], sqlite3.Connection]) -> None:
        self._open = open
        self.local = threading.local()
        self.connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        _holders.add(self)

    def open(self, slot: str = "conn", wait: bool = True) -> sqlite3.Connection:
        """This thread's connection in ``slot``, opened now; ``wait=False``: its statements
        fail at once where another connection holds the lock (see :meth:`SQLiteFile.connect`)."""
        conn = self._open(wait)
        setattr(self.local, slot, conn)
        with self._lock:
            self.connections.append(conn)
        return conn

    def get(self, slot: str = "conn") -> sqlite3.Connection:
        try:
            conn: sqlite3.Connection = getattr(self.local, slot)
        except AttributeError:
            conn = self.open(slot)
        return conn

    def close(self) -> None:
        """Close every connection opened here; the next use opens new ones."""
        with self._lock:
            connections, self.connections = self.connections, []
            self.local = threading.local()
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _forget(self) -> None:
        _inherited.extend(self.connections)
        self.connections = []
        self.local = threading.local()
        self._lock = threading.Lock()  # another thread may have held it at the fork


class ProcessConnection:
    """One connection per process, shared by its threads under :attr:`lock`, opened by
    ``open()`` on first use and again after :meth:`close`."""

    def __init__(self, file: SQLiteFile, open: Callable[[], sqlite3.Connection]) -> None:
        self.file = file
        self._open = open
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        _holders.add(self)

    def get(self) -> sqlite3.Connection:
        """The connection (call with :attr:`lock` held)."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._open()
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once, committed on success; sqlite3's errors mapped."""
        with self.lock:
            with self.file.mapped():
                conn = self.get()
            with self.file.transaction(conn):
                yield conn

    def close(self) -> None:
        with self.lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _forget(self) -> None:
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self.lock = threading.RLock()
