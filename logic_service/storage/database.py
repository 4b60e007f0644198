"""The logic tier's database: one SQLAlchemy Core ``metadata`` and ``open_database(url)``.

Every module that keeps state (the prediction log, rollout state) declares its
tables on ``metadata`` and queries through them; the schema itself is made by
the Alembic revisions in ``migrations/``, which ``open_database`` runs up to
head under a lock, so replicas and workers starting together never race
(``storage.migrate_on_start``; when off, it only checks the schema is at
head). The default is an embedded SQLite file in WAL mode, so readers
(evaluation, feedback) never wait for the writer and several uvicorn workers
can share one file; a ``postgresql://`` URL is the scale-out case and needs no
code change because only portable Core constructs are used.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine

from logic_service.storage.database_url import (
    URL_SETTING,
    DatabaseConfigError,
    database_url,
    masked,
)
from logic_service.storage.migrations import runner

log = logging.getLogger(__name__)

metadata = sqlalchemy.MetaData()

# Every module declaring tables on ``metadata``: imported so that ``schema_metadata`` is whole.
TABLE_MODULES = (
    "logic_service.storage.prediction_log",
    "logic_service.storage.log_aggregates",
    "logic_service.storage.aggregate_backfill",
    "logic_service.storage.rollout_state",
    "logic_service.storage.retired_apis",
    "logic_service.pinning.pins",
)
DEFAULT_BUSY_TIMEOUT_MS = 5000


def _json_text(value: Any) -> str:
    """Model outputs hold numpy values; the stdlib encoder would refuse them."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_busy(exc: BaseException) -> bool:
    """SQLite's lock contention (another worker is writing): worth a retry, not an error."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text


def schema_metadata() -> sqlalchemy.MetaData:
    """``metadata`` with every table of the logic tier on it (what the migrations must build)."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return metadata


def open_database(
    url: str,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    *,
    password_file: Path | None = None,
    migrate: bool = True,
) -> Engine:
    """An engine for ``url`` whose schema is at this release's head.

    ``url`` is ``storage.database_url`` as written (``postgresql://`` means
    psycopg 3; see ``database_url``), ``password_file`` its
    ``storage.database_password_file``. A relative SQLite path is relative to
    the working directory and its folder is created on demand. ``migrate``
    upgrades to head under the migration lock (``runner.upgrade``); without it
    a schema not at head is refused (``runner.SchemaNotAtHead``).
    """
    engine = create_engine(url, busy_timeout_ms, password_file=password_file)
    try:
        if migrate:
            result = runner.upgrade(engine)
            state = result.after
        else:
            state = runner.require_head(engine)
    except BaseException:
        engine.dispose()
        raise
    log.info("database %s: schema %s", masked(engine.url), state.describe())
    return engine


def create_engine(
    url: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, *, password_file: Path | None = None
) -> Engine:
    """The engine alone, schema untouched (``db current`` reads through it)."""
    parsed = database_url(url, password_file)
    options: dict[str, Any] = {"json_serializer": _json_text, "future": True}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseConfigError(
                    f"{URL_SETTING}: {masked(parsed)!r}: cannot create the folder {folder}: "
                    f"{exc.strerror or exc}"
                ) from None
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
