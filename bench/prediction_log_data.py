"""A prediction log of production size, bulk-inserted: the rows and the aggregates the writer keeps.

One hour at ``rows / 3600`` requests a second (1,000 for the default 3.6 M)
ending now, one model (``ctr``), three versions (80/10/10 % of traffic, a
canary's arms), 0.1 % answered 503, a latency of a few milliseconds, a score
per record and 1 % of the records labelled. Rows go straight into the
database in chunks (SQLite: ``executemany`` on the driver; PostgreSQL:
``COPY``), not through the HTTP API, and the aggregates are computed by the
writer's own code (``log_aggregates.Deltas``) and upserted once at the end,
so they are exactly what the flushes would have written.

``disk_per_row`` writes a sample with each ``storage.payloads`` mode and
measures what a row costs on disk (table, indexes; SQLite after a WAL
checkpoint), the figure behind "disk per hour at 1,000 requests/s".
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from logic_service.features.ctr import EXAMPLE_REQUEST
from logic_service.storage.log_aggregates import Deltas
from logic_service.storage.payloads import PayloadPolicy

MODEL = "ctr"
VERSIONS = (1795321077, 1795407477, 1795493877)
ARMS = ("baseline", "candidate", "candidate")
SHARES = (0.8, 0.1, 0.1)
CHUNK = 50_000
COLUMNS = (
    "request_id", "record_index", "batch_size", "ts", "model", "version", "arm", "strategy",
    "api_version", "input", "output", "score", "latency_ms", "status", "error", "label",
    "reward", "feedback_at", "feedback_updates",
)  # fmt: skip
INPUT = orjson.dumps(EXAMPLE_REQUEST).decode()


@dataclass(frozen=True)
class BuiltLog:
    rows: int
    labelled: int
    seconds: float  # inserting rows and aggregates
    since: float  # unix time of the first row
    until: float


def _chunks(rows: int, start: float, seed: int):
    """Column arrays per chunk of rows, in time order (ids follow time, as the writer's do)."""
    rng = np.random.default_rng(seed)
    step = 3600.0 / rows
    for first in range(0, rows, CHUNK):
        n = min(CHUNK, rows - first)
        index = np.arange(first, first + n)
        ts = start + index * step
        arm = rng.choice(3, size=n, p=SHARES)
        failed = rng.random(n) < 0.001
        latency = rng.gamma(2.0, 2.0, n) + 1.0
        logit = rng.normal(-1.0, 1.5, n)
        score = np.round(1.0 / (1.0 + np.exp(-logit)), 6)
        labelled = (~failed) & (rng.random(n) < 0.01)
        label = (rng.random(n) < score).astype(float)
        yield index, ts, arm, failed, latency, score, labelled, label


def _rows(rows: int, start: float, seed: int, policy: PayloadPolicy):
    for index, ts, arm, failed, latency, score, labelled, label in _chunks(rows, start, seed):
        chunk: list[dict[str, Any]] = []
        for i in range(len(index)):
            request_id = f"bench-{index[i]}"
            keep = policy.keeps(request_id)
            ok = not failed[i]
            chunk.append(
                {
                    "request_id": request_id,
                    "record_index": 0,
                    "batch_size": 1,
                    "ts": float(ts[i]),
                    "model": MODEL,
                    "version": VERSIONS[arm[i]],
                    "arm": ARMS[arm[i]],
                    "strategy": "canary",
                    "api_version": "v1",
                    "input": INPUT if keep else None,
                    "output": f'{{"score": {score[i]}}}' if keep and ok else None,
                    "score": float(score[i]) if ok else None,
                    "latency_ms": float(latency[i]),
                    "status": 200 if ok else 503,
                    "error": None if ok else "graph_unavailable",
                    "label": float(label[i]) if labelled[i] else None,
                    "reward": None,
                    "feedback_at": float(ts[i]) + 60.0 if labelled[i] else None,
                    "feedback_updates": int(labelled[i]),
                }
            )
        yield chunk


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_sqlite(engine: Engine, chunk: list[dict[str, Any]]) -> None:
    """SQLAlchemy's own storage format for DateTime on SQLite (naive UTC text)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        marks = ", ".join("?" for _ in COLUMNS)
        cursor.executemany(
            f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({marks})",
            [
                tuple(_iso(row[c]) if c in ("ts", "feedback_at") else row[c] for c in COLUMNS)
                for row in chunk
            ],
        )
        raw.commit()
    finally:
        raw.close()


def _insert_postgres(engine: Engine, chunk: list[dict[str, Any]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in chunk:
                copy.write_row(
                    [
                        (_iso(row[c]) + "+00") if c in ("ts", "feedback_at") and row[c] else row[c]
                        for c in COLUMNS
                    ]
                )
        raw.commit()
    finally:
        raw.close()


def build_log(
    engine: Engine,
    rows: int,
    end: float,
    policy: PayloadPolicy,
    seed: int = 28,
    say=print,
    *,
    aggregates: bool = True,
) -> BuiltLog:
    """``rows`` predictions over the hour before ``end``, and their aggregates.

    ``aggregates=False``: the rows alone, as a release before revision 0004 logged them.
    """
    insert = _insert_sqlite if engine.dialect.name == "sqlite" else _insert_postgres
    start = end - 3600.0
    deltas = Deltas()
    labelled = 0
    began = time.perf_counter()
    done = 0
    for chunk in _rows(rows, start, seed, policy):
        insert(engine, chunk)
        if aggregates:
            deltas.add_rows(chunk)
        labelled += sum(row["label"] is not None for row in chunk)
        done += len(chunk)
        if done % 500_000 < CHUNK:
            say(f"  {done:,} rows ({time.perf_counter() - began:.0f} s)")
    with engine.begin() as connection:
        deltas.write(connection)
    return BuiltLog(rows, labelled, time.perf_counter() - began, start, end)


def database_bytes(engine: Engine) -> int:
    """What the log takes on disk: file + WAL (SQLite), or the tables with indexes (PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        wal = Path(f"{path}-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    with engine.connect() as connection:
        return int(
            connection.exec_driver_sql(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                "WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
            ).scalar()
            or 0
        )


def table_bytes(engine: Engine, tables: tuple[str, ...]) -> int:
    """Bytes of some tables with their indexes (SQLite: the dbstat virtual table)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            names = ", ".join(f"'{t}'" for t in tables)
            indexes = connection.exec_driver_sql(
                f"SELECT name FROM sqlite_master WHERE tbl_name IN ({names})"
            ).scalars()
            every = ", ".join(f"'{n}'" for n in {*tables, *indexes})
            query = f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({every})"
            try:
                return int(connection.exec_driver_sql(query).scalar())
            except OperationalError:
                # no dbstat in this process's SQLite: TensorFlow, once imported, brings
                # its own SQLite without it. Python's own, in a fresh process, has it.
                return _dbstat_elsewhere(Path(engine.url.database or ""), query)
        names = ", ".join(f"'{t}'" for t in tables)
        return int(
            connection.exec_driver_sql(
                f"SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                f"WHERE c.relname IN ({names})"
            ).scalar()
        )


def _dbstat_elsewhere(path: Path, query: str) -> int:
    script = (
        "import sqlite3, sys; "
        "print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), query],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(done.stdout.strip())


def checkpoint(engine: Engine) -> None:
    """SQLite: move the WAL into the file, so the file size is the log's size."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
