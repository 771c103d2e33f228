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
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator

from ...errors import Conflict, NotFound, PermissionDenied, ProviderError, Unavailable
from ...resources.url import ResourceURL

__all__ = [
    "BUSY_TIMEOUT",
    "SYNCHRONOUS",
    "ProcessConnection",
    "SQLiteFile",
    "ThreadConnections",
    "busy",
    "immediate",
]

#: Seconds a statement waits for another writer's lock before it fails as ``Unavailable``.
BUSY_TIMEOUT = 30.0
#: The values of the ``synchronous`` option; the first is the default.
SYNCHRONOUS = ("full", "normal")

_UNAVAILABLE = frozenset({"SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL"})
_DENIED = frozenset({"SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"})


def busy(exc: sqlite3.Error) -> bool:
    """The statement could not take the lock (another writer holds it) and changed nothing."""
    code = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    return code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "database is busy" in text


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (``BEGIN IMMEDIATE``): committed if the block
    ends normally, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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

    def connect(self, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
        """A new autocommit connection with the pragmas, creating the file's folder if missing.

        ``timeout`` is how long a statement waits for another writer's lock (0: not at all)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.os_error(exc) from exc
        try:
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        except sqlite3.Error as exc:
            conn.close()
            raise self.error(exc) from exc
        return conn

    def error(self, exc: sqlite3.Error, key: str | None = None) -> ProviderError:
        """``exc`` as the :mod:`overcast.errors` exception it means, naming the resource and file."""
        about = f"{self.resource}: SQLite {self.path}" + (f", key {key!r}" if key is not None else "")
        code = getattr(exc, "sqlite_errorname", "")
        text = str(exc).lower()
        name = self.resource
        if busy(exc):
            return Unavailable(f"{about}: stayed locked by another writer: {exc}", resource=name)
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
    """A connection per thread and slot, opened by ``open(timeout)`` on first use.

    A thread reads its connection as ``local.SLOT`` (fast: no call) and calls :meth:`open`
    when it has none yet.
    """

    def __init__(self, open: Callable[[float], sqlite3.Connection]) -> None:
        self._open = open
        self.local = threading.local()
        self.connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        _holders.add(self)

    def open(self, slot: str = "conn", timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
        """This thread's connection in ``slot``, opened now with the given busy ``timeout``."""
        conn = self._open(timeout)
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
        with self.lock, self.file.mapped(), immediate(self.get()) as conn:
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
