"""Durable queues and topics in one SQLite file: ``sqlite:///queues/jobs.db``.

Every queue in a file lives in one ``messages`` table, told apart by its ``queue``
column: the plain queue, each subscription of a topic, and the dead letters of
each. A receive claims messages in one ``BEGIN IMMEDIATE`` transaction, so threads
and processes sharing the file never get the same delivery within its visibility
timeout. The file is in WAL mode; with the default ``synchronous=full`` a send (or
ack) that returned survives a crash of the machine, not only of the process (see
:mod:`._sqlite`). Timestamps are wall-clock seconds, comparable across processes.

URL options:
    max_attempts: deliveries without an ack before a message is dead-lettered
        (default :attr:`Queue.default_max_attempts`).
    subscription: open the queue of this topic subscription instead of the
        plain queue (what :meth:`SQLiteTopic.subscription` returns records it).
    dead_letters: ``true`` to open the dead-letter queue of that queue.
    synchronous: ``full`` (default) or ``normal``: see :mod:`._sqlite`.
    timeout: how long a call waits for another process's lock (default 30 s): see
        :mod:`._sqlite`.

Decisions:
    * An ack or nack whose receipt is stale (the message was delivered again since,
      or is already gone) is ignored, as SQS does: the newer delivery is kept.
    * A topic with no subscriptions drops what is published to it, as SNS does.
    * Dead letters keep their id, body and attributes; their attempt count starts
      over, and a dead-letter queue never dead-letters (it has no ``max_attempts``).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from typing import Any, ClassVar

from ...errors import InvalidArgument, ProviderError
from ...resources.queue import Message, Queue, Topic, decode_body, poll, poll_blocking
from ...resources.records import replace
from ...resources.url import ResourceURL
from ._sqlite import ProcessConnection, SQLiteFile

__all__ = ["SQLiteQueue", "SQLiteTopic"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    attributes TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS messages_receipt ON messages (receipt);
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
"""

_PLAIN = "queue"
_POLL_FIRST = 0.01
_POLL_MAX = 0.1


def _subscription_queue(name: str) -> str:
    return f"subscription/{name}"


def _dead_queue(queue: str) -> str:
    return f"dead-letters/{queue}"


class _Database(ProcessConnection):
    """One SQLite file opened lazily, its schema made: a connection per process, guarded by
    a lock. Queues of one file opened together (a topic, its subscriptions, their dead
    letters) share it. After :meth:`close` the next use opens it again.
    """

    def __init__(self, file: SQLiteFile) -> None:
        super().__init__(file, self._open_schema)
        self.path = file.path

    def _open_schema(self) -> sqlite3.Connection:
        return self.file.connect(setup=self._make_schema)

    def _make_schema(self, conn: sqlite3.Connection) -> None:
        with self.file.transaction(conn):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)


def _max_attempts(url: ResourceURL, resource: str) -> int:
    return url.option_int("max_attempts", Queue.default_max_attempts, minimum=1, resource=resource)


class SQLiteQueue(Queue):
    """A durable queue in a SQLite file, shared safely by threads and processes.

    Capabilities: ``delay``, ``dead_letter``, ``multiprocess``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess", "depth", "peek"})
    offload: ClassVar[bool] = True

    def __init__(
        self,
        url: ResourceURL | str | None = None,
        *,
        name: str | None = None,
        _database: _Database | None = None,
    ) -> None:
        super().__init__(url, name=name)
        loc = self.location
        self._db = _database or _Database(SQLiteFile(loc, self.name))
        subscription = loc.option("subscription")
        self._subscription = subscription
        queue = _PLAIN if subscription is None else _subscription_queue(subscription)
        self._dead = loc.option_bool("dead_letters", False, resource=self.name)
        self._queue = _dead_queue(queue) if self._dead else queue
        self.max_attempts: int | None = None if self._dead else _max_attempts(loc, self.name)
        self._registered = subscription is None

    # -- life cycle ----------------------------------------------------------------

    def _create_blocking(self) -> None:
        with self._db.transaction():
            pass
        self._register()

    def _ping_blocking(self) -> None:
        with self._db.lock:
            conn = self._db.get()
            self._db.file.run(conn, lambda: conn.execute("SELECT 1 FROM messages LIMIT 1").fetchall())

    def close(self) -> None:
        self._db.close()

    def dead_letters(self) -> SQLiteQueue:
        """The queue of this queue's dead letters, in the same file."""
        if self._dead:
            raise InvalidArgument(f"{self.name}: a dead-letter queue has no dead-letter queue", resource=self.name)
        options = {k: v for k, v in self.location.options.items() if k != "max_attempts"}
        options["dead_letters"] = "true"
        location = replace(self.location, options=options)
        return SQLiteQueue(location, name=f"{self.name} (dead letters)", _database=self._db)

    def _register(self) -> None:
        """Record this queue's subscription, so publishing fans out to it."""
        if self._registered:
            return
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO subscriptions (name, created_at) VALUES (?, ?)",
                (self._subscription, time.time()),
            )
        self._registered = True

    # -- hooks ---------------------------------------------------------------------

    def _send_blocking(self, data: bytes, attributes: dict[str, str], delay: float) -> str:
        self._register()
        message_id = str(uuid.uuid4())
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at) VALUES (?, ?, ?, ?, ?, ?)",
                (self._queue, message_id, data, json.dumps(attributes), now, now + delay),
            )
        return message_id

    def _claim(self, max_messages: int, visibility_timeout: float) -> list[Message]:
        """Dead-letter what exhausted its attempts, then claim up to ``max_messages`` visible messages."""
        self._register()
        now = time.time()
        with self._db.transaction() as conn:
            if self.max_attempts is not None:
                conn.execute(
                    "UPDATE messages SET queue = ?, attempts = 0, receipt = NULL, visible_at = ?"
                    " WHERE queue = ? AND visible_at <= ? AND attempts >= ?",
                    (_dead_queue(self._queue), now, self._queue, now, self.max_attempts),
                )
            rows = conn.execute(
                "UPDATE messages SET visible_at = ?, receipt = lower(hex(randomblob(16))), attempts = attempts + 1"
                " WHERE seq IN (SELECT seq FROM messages WHERE queue = ? AND visible_at <= ?"
                " ORDER BY visible_at, seq LIMIT ?)"
                " RETURNING seq, id, body, attributes, attempts, receipt",
                (now + visibility_timeout, self._queue, now, max_messages),
            ).fetchall()
        rows.sort(key=lambda row: row[0])
        return [self._message(row) for row in rows]

    def _message(self, row: tuple[Any, ...]) -> Message:
        _, message_id, body, attributes, attempts, receipt = row
        try:
            return Message(message_id, decode_body(body), json.loads(attributes), attempts, receipt)
        except ValueError as exc:
            raise ProviderError(f"{self.name}: message {message_id} is corrupt: {exc}", resource=self.name) from exc

    def _receive_blocking(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        return poll_blocking(
            lambda: self._claim(max_messages, visibility_timeout), wait, first=_POLL_FIRST, most=_POLL_MAX
        )

    async def _receive(self, max_messages: int, visibility_timeout: float, wait: float) -> list[Message]:
        # Polls on the loop between claims, so cancelling a waiting receive claims nothing more.
        return await poll(
            lambda: self._call(self._claim, max_messages, visibility_timeout), wait, first=_POLL_FIRST, most=_POLL_MAX
        )

    def _ack_blocking(self, message: Message) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM messages WHERE receipt = ? AND queue = ? AND id = ?",
                (message.receipt, self._queue, message.id),
            )

    def _nack_blocking(self, message: Message, delay: float) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE messages SET visible_at = ? WHERE receipt = ? AND queue = ? AND id = ?",
                (time.time() + delay, message.receipt, self._queue, message.id),
            )

    def _depth_blocking(self) -> int:
        self._register()
        limit = self.max_attempts if self.max_attempts is not None else 2**62
        with self._db.transaction() as conn:  # what the next receive could claim
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE queue = ? AND visible_at <= ? AND attempts < ?",
                (self._queue, time.time(), limit),
            ).fetchone()
        return int(row[0])

    def _peek_blocking(self, limit: int) -> list[Message]:
        self._register()
        cap = self.max_attempts if self.max_attempts is not None else 2**62
        with self._db.transaction() as conn:  # what the next receives would claim, in their order
            rows = conn.execute(
                "SELECT seq, id, body, attributes, attempts, '' FROM messages"
                " WHERE queue = ? AND visible_at <= ? AND attempts < ? ORDER BY visible_at, seq LIMIT ?",
                (self._queue, time.time(), cap, limit),
            ).fetchall()
        return [self._message(row) for row in rows]


class SQLiteTopic(Topic):
    """A durable topic in a SQLite file: each message is copied to every subscription's queue.

    Capabilities: ``delay``, ``dead_letter``, ``multiprocess`` (those of its subscriptions).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"delay", "dead_letter", "multiprocess"})
    offload: ClassVar[bool] = True

    def __init__(self, url: ResourceURL | str | None = None, *, name: str | None = None) -> None:
        super().__init__(url, name=name)
        self._db = _Database(SQLiteFile(self.location, self.name))
        _max_attempts(self.location, self.name)  # a bad option fails at open, not at the first subscription

    def _create_blocking(self) -> None:
        with self._db.transaction():
            pass

    def _ping_blocking(self) -> None:
        with self._db.lock:
            conn = self._db.get()
            self._db.file.run(conn, lambda: conn.execute("SELECT 1 FROM subscriptions LIMIT 1").fetchall())

    def close(self) -> None:
        self._db.close()

    def _subscription(self, name: str, max_attempts: int | None) -> SQLiteQueue:
        options = dict(self.location.options)
        options["subscription"] = name
        if max_attempts is not None:
            options["max_attempts"] = str(max_attempts)
        location = replace(self.location, options=options)
        return SQLiteQueue(location, name=f"{self.name}/{name}", _database=self._db)

    def _publish_blocking(self, data: bytes, attributes: dict[str, str]) -> str:
        message_id = str(uuid.uuid4())
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at)"
                " SELECT 'subscription/' || name, ?, ?, ?, ?, ? FROM subscriptions ORDER BY name",
                (message_id, data, json.dumps(attributes), now, now),
            )
        return message_id
