"""One migrator at a time: replicas and uvicorn workers start together and all upgrade.

Without a lock two processes both see an empty database and both run
revision 0001; the slower one fails on "table already exists" (or, on
PostgreSQL, both insert into ``alembic_version``). Under the lock the second
one finds the schema at head and does nothing.

- PostgreSQL: a session-level ``pg_advisory_lock`` on a fixed key, taken on
  the very connection Alembic then runs on. Session-level, so it survives the
  migration's own commits; it is also released by the server if the process
  dies, so a crashed migrator never leaves the database locked.
- SQLite: an exclusive ``fcntl.flock`` on ``<database file>.migrate-lock``
  next to the database (the kernel drops it when the process dies). The file
  is left in place: deleting it would let a waiter lock an unlinked inode
  while a newcomer locks a new file. An in-memory database belongs to one
  process and needs no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# The bytes of "tierkit" as one signed 64-bit key: fixed, so every release agrees on it.
ADVISORY_LOCK_KEY = int.from_bytes(b"tierkit", "big")
LOCK_SUFFIX = ".migrate-lock"


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection that holds the migration lock until the block ends."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine) as connection:
            yield connection
        return
    path = sqlite_lock_path(engine)
    if path is None:
        with engine.connect() as connection:
            yield connection
        return
    with _file_lock(path), engine.connect() as connection:
        yield connection


def sqlite_lock_path(engine: Engine) -> Path | None:
    """``<file>.migrate-lock`` next to a SQLite file; None for an in-memory database."""
    database = engine.url.database or ""
    if database.startswith("file:"):  # a URI filename: file:path?mode=...
        path, _, query = database[len("file:") :].partition("?")
        if "mode=memory" in query:
            return None
        database = path
    if database in ("", ":memory:"):
        return None
    return Path(database + LOCK_SUFFIX)  # the very path SQLite opens, plus the suffix


@contextlib.contextmanager
def _advisory_lock(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        key = {"key": ADVISORY_LOCK_KEY}
        if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            log.info("waiting for the migration lock: another process is migrating")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        connection.commit()  # the lock is the session's; Alembic starts from a clean state
        try:
            yield connection
        finally:
            try:
                connection.rollback()  # a failed migration leaves an aborted transaction
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                connection.commit()
            except Exception:
                # Never hand a connection that may still hold the lock back to the pool.
                connection.invalidate()
                raise


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the migration lock %s: another process is migrating", path)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock
