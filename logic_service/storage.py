"""The logic tier's database: one SQLAlchemy Core ``metadata`` and ``open_database(url)``.

Every module that keeps state (the prediction log here, rollout state
elsewhere) declares its tables on ``metadata``; ``open_database`` creates
whatever is missing. The default is an embedded SQLite file in WAL mode, so
readers (evaluation, feedback) never wait for the writer and several uvicorn
workers can share one file; a ``postgresql://`` URL is the scale-out case and
needs no code change because only portable Core constructs are used.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

metadata = sqlalchemy.MetaData()

# Modules whose tables must exist whichever part of the logic tier opens the database first.
TABLE_MODULES = ("logic_service.prediction_log",)
DEFAULT_BUSY_TIMEOUT_MS = 5000
CREATE_ATTEMPTS = 5


def _json_text(value: Any) -> str:
    """Model outputs hold numpy values; the stdlib encoder would refuse them."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_busy(exc: BaseException) -> bool:
    """SQLite's lock contention (another worker is writing): worth a retry, not an error."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text


def open_database(url: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """An engine for ``url`` with every table on ``metadata`` created.

    A relative SQLite path is relative to the working directory and its folder
    is created on demand. Several workers may start at once: table creation is
    retried when two of them race.
    """
    for module in TABLE_MODULES:
        importlib.import_module(module)
    parsed = make_url(url)
    options: dict[str, Any] = {"json_serializer": _json_text, "future": True}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # The writer thread and the request threads share the pool's connections.
        options["connect_args"] = {
            "check_same_thread": False,
            "timeout": busy_timeout_ms / 1000.0,
        }
    else:
        options["pool_pre_ping"] = True
    engine = sqlalchemy.create_engine(parsed, **options)
    if sqlite:
        _tune_sqlite(engine, busy_timeout_ms)
    _create_tables(engine)
    return engine


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL: durable across process crashes, one fsync per checkpoint.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def _create_tables(engine: Engine) -> None:
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            metadata.create_all(engine, checkfirst=True)
            return
        except DBAPIError as exc:
            # Another worker created a table between our check and our CREATE, or holds the lock.
            if attempt == CREATE_ATTEMPTS:
                raise
            log.info("creating tables (attempt %d) met %s; retrying", attempt, exc.orig)
            time.sleep(0.1 * attempt)
