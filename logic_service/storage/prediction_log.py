"""The ``predictions`` table: every predict answer (and every failure) as its rows.

What a request becomes (``LogEntry.rows``) and the one transaction that inserts
rows with their aggregates (``insert_with_aggregates``). The writer that runs
it off the request path, spilling while the database is away, is
``storage/writer/``.

Layout: one row per record. A ``{"records": [...]}`` request of n records
gives n rows sharing the request id, told apart by ``record_index``
(0..n-1) and all carrying ``batch_size`` n; a single-record request is index 0
of batch size 1. Feedback joins on ``(request_id, record_index)``. A failed
request is one row (index 0, the whole body as input, no output, its HTTP
status and error code). A repeated ``(request_id, record_index)`` keeps the
first row (``insert_ignoring_duplicates``).

``score`` is extracted at write time so evaluation needs no JSON parsing, by
the one rule the holdout and shadow comparisons use too (``scores.score_of``):
the output's only value, or the one named ``score``, ``probability``,
``probabilities``, ``scores`` (in that order), when it is one finite number
(or a one-element list).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Connection, Engine

from logic_service.scores import score_of
from logic_service.storage import log_aggregates
from logic_service.storage.database import is_sqlite, metadata

log = logging.getLogger(__name__)

MAX_ID = 160

predictions = Table(
    "predictions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("request_id", String(MAX_ID), nullable=False),
    Column("record_index", Integer, nullable=False, default=0),
    Column("batch_size", Integer, nullable=False, default=1),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", BigInteger, nullable=True),  # None: failed before a version was chosen
    Column("arm", String(128), nullable=True),
    Column("strategy", String(64), nullable=True),
    # The request API of the path (v1, v2...); None on rows written before API versions,
    # which all came through /v1. Retiring an API counts its recent rows (retired_apis).
    Column("api_version", String(16), nullable=True),
    Column("input", Text, nullable=True),  # JSON of the raw record (whole body for failures)
    Column("output", Text, nullable=True),  # JSON of this record's prediction
    Column("score", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", String(64), nullable=True),  # the error code of a failed request
    Column("label", Float, nullable=True),
    Column("reward", Float, nullable=True),
    Column("feedback_at", DateTime(timezone=True), nullable=True),
    Column("feedback_updates", Integer, nullable=False, default=0),
    UniqueConstraint("request_id", "record_index", name="uq_predictions_request"),
    Index("ix_predictions_model_ts", "model", "ts"),
    Index("ix_predictions_model_api_ts", "model", "api_version", "ts"),
)


def utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken as UTC (SQLite hands them back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


@dataclass(frozen=True)
class LogEntry:
    """What the request path hands over: references only; the writer does the work."""

    ts: datetime
    request_id: str
    model: str
    version: int | None
    arm: str | None
    strategy: str | None
    api_version: str | None
    body: Any
    answer: Mapping[str, Any] | None
    latency_ms: float
    status: int
    error: str | None

    def rows(self) -> list[dict[str, Any]]:
        common = {
            "request_id": self.request_id[:MAX_ID],
            "ts": self.ts,
            "model": self.model,
            "version": self.version,
            "arm": self.arm,
            "strategy": self.strategy,
            "api_version": self.api_version,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "error": self.error,
            "label": None,
            "reward": None,
            "feedback_at": None,
            "feedback_updates": 0,
        }
        if self.answer is not None and "predictions" in self.answer:
            outputs = list(self.answer["predictions"])
            records = self.body.get("records") if isinstance(self.body, Mapping) else None
            if not isinstance(records, list) or len(records) != len(outputs):
                records = [None] * len(outputs)
            return [
                common
                | {
                    "record_index": i,
                    "batch_size": len(outputs),
                    "input": _json(record),
                    "output": _json(output),
                    "score": score_of(output),
                }
                for i, (record, output) in enumerate(zip(records, outputs, strict=True))
            ]
        output = self.answer.get("prediction") if self.answer is not None else None
        return [
            common
            | {
                "record_index": 0,
                "batch_size": 1,
                "input": _json(self.body),
                "output": _json(output) if self.answer is not None else None,
                "score": score_of(output) if self.answer is not None else None,
            }
        ]


def row_from_spill(row: dict[str, Any]) -> dict[str, Any]:
    """A row as ``orjson`` wrote it, with its times datetimes again."""
    for name in ("ts", "feedback_at"):
        if isinstance(row.get(name), str):
            row[name] = datetime.fromisoformat(row[name])
    return row


def row_count(answer: Mapping[str, Any] | None) -> int:
    if answer is not None and "predictions" in answer:
        return max(1, len(answer["predictions"]))
    return 1


def insert_ignoring_duplicates(engine: Engine) -> Any:
    """INSERT that skips a repeated request id and names the rows it really inserted."""
    if is_sqlite(engine):
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        raise NotImplementedError(
            f"the prediction log needs SQLite or PostgreSQL, not {engine.dialect.name}"
        )
    return (
        dialect_insert(predictions)
        .on_conflict_do_nothing()
        .returning(predictions.c.request_id, predictions.c.record_index)
    )


def insert_with_aggregates(
    connection: Connection, statement: Any, rows: list[dict[str, Any]]
) -> int:
    """The flush's one transaction: the rows, then the aggregates of those inserted.

    ``statement`` is ``insert_ignoring_duplicates``'s: RETURNING names the rows
    really inserted (executemany's row count is not reliable on PostgreSQL), so
    a repeated request id adds nothing to the aggregates (``log_aggregates``).
    The upserts come last so their bucket rows stay locked the shortest time.
    """
    inserted = {(r.request_id, r.record_index) for r in connection.execute(statement, rows)}
    if len(inserted) < len(rows):  # the first row of each inserted key: the one kept
        fresh = []
        for row in rows:
            key = (row["request_id"], row["record_index"])
            if key in inserted:
                inserted.discard(key)
                fresh.append(row)
        rows = fresh
    try:
        deltas = log_aggregates.Deltas().add_rows(rows)
    except Exception:  # a row the sums cannot take must not cost the log its rows
        log.exception("prediction log: %d rows not added to the aggregates", len(rows))
        return len(rows)
    deltas.write(connection)
    return len(rows)
