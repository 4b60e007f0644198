"""Every predict answer (and every failure) as rows of the ``predictions`` table.

Writing happens off the request path: ``PredictionRecorder.record`` only puts
the raw objects on a bounded queue (``put_nowait``: it never blocks and never
raises into a request) and a writer thread batch-inserts them every
``flush_interval_ms`` or as soon as ``batch_size`` rows wait. A full queue, or
a batch the database would not take even after retries, is counted in
``tierkit_prediction_log_dropped_total``: a record is never lost silently.

Layout: one row per record. A ``{"records": [...]}`` request of n records
gives n rows sharing the request id, told apart by ``record_index``
(0..n-1) and all carrying ``batch_size`` n; a single-record request is index 0
of batch size 1. Feedback joins on ``(request_id, record_index)``. A failed
request is one row (index 0, the whole body as input, no output, its HTTP
status and error code). A caller that reuses an ``X-Request-ID`` keeps the
first row; the repeat is counted as dropped (reason ``duplicate``).

``score`` is extracted at write time so evaluation needs no JSON parsing: the
output's only value, or the one named ``score``, ``probability``,
``probabilities``, ``scores`` (in that order), when it is one number (or a
one-element list).
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
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
    insert,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from logic_service.metrics import Metrics
from logic_service.request_context import RequestContext
from logic_service.storage import is_sqlite, metadata

log = logging.getLogger(__name__)

SCORE_NAMES = ("score", "probability", "probabilities", "scores")
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
    # which all came through /v1. Retiring an API counts its recent rows (api_retirement).
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


def score_of(prediction: Any) -> float | None:
    """The number evaluation treats as the model's score; None when there is none."""
    if not isinstance(prediction, Mapping):
        return _number(prediction)
    if len(prediction) == 1:
        return _number(next(iter(prediction.values())))
    for name in SCORE_NAMES:
        if name in prediction:
            return _number(prediction[name])
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    elif isinstance(value, list | tuple):
        if len(value) != 1:
            return None
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


@dataclass(frozen=True)
class _Entry:
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


class PredictionRecorder:
    """A bounded queue and the thread that drains it into ``predictions``.

    ``start`` is separate from construction so the owner decides when writing
    begins (the app's lifespan); records put before it simply wait in the queue.
    """

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics | None = None,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_ms: int = 200,
        write_retry_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.batch_size = batch_size
        self.interval = flush_interval_ms / 1000.0
        self.write_retry_s = write_retry_s
        self._queue: queue.Queue[_Entry] = queue.Queue(maxsize=queue_size)
        self._enqueued = itertools.count(1)
        self._last_enqueued = 0
        self._processed = 0
        self._done = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._insert = _insert_ignoring_duplicates(engine)

    # ---- request path ------------------------------------------------------------------------

    def record(
        self,
        context: RequestContext,
        body: Any,
        answer: Mapping[str, Any] | None,
        status: int,
        error: str | None = None,
    ) -> bool:
        """Queue one request's outcome; False (and a counted drop) when the queue is full."""
        try:
            entry = _Entry(
                ts=datetime.now(UTC),
                request_id=context.request_id,
                model=context.model or "",
                version=context.version,
                arm=getattr(context, "arm", None),
                strategy=getattr(context, "strategy", None),
                api_version=getattr(context, "api_version", None),
                body=body,
                answer=answer,
                latency_ms=context.elapsed() * 1000.0,
                status=status,
                error=error,
            )
            self._queue.put_nowait(entry)
        except queue.Full:
            self._count_dropped("queue_full", _row_count(answer))
            return False
        except Exception:  # recording must never fail an answer
            log.exception("could not queue prediction %s for the log", context.request_id)
            self._count_dropped("invalid", _row_count(answer))
            return False
        self._last_enqueued = next(self._enqueued)
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="tierkit-prediction-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the writer; called from the app's shutdown."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log writer did not finish within %.0f s", timeout)
            self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything queued before this call is written (or dropped)."""
        target = self._last_enqueued
        if self._thread is None:
            return self._processed >= target
        deadline = time.monotonic() + timeout
        with self._done:
            while self._processed < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._done.wait(min(left, 0.05))
        return True

    def depth(self) -> int:
        return self._queue.qsize()

    # ---- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            stopping = self._stopping.is_set()
            self._drain(final=stopping)
            if stopping and self._queue.empty():
                return

    def _drain(self, final: bool) -> None:
        while True:
            entries: list[_Entry] = []
            while len(entries) < self.batch_size:
                try:
                    entries.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self.metrics is not None:
                self.metrics.prediction_log_queue.set(self._queue.qsize())
            if not entries:
                return
            rows: list[dict[str, Any]] = []
            for entry in entries:
                try:
                    rows.extend(entry.rows())
                except Exception:
                    log.exception("unloggable prediction %s", entry.request_id)
                    self._count_dropped("invalid", _row_count(entry.answer))
            if rows:
                self._write(rows, final)
            with self._done:
                self._processed += len(entries)
                self._done.notify_all()

    def _write(self, rows: list[dict[str, Any]], final: bool) -> None:
        patience = min(self.write_retry_s, 5.0) if final else self.write_retry_s
        deadline = time.monotonic() + patience
        pause = 0.05
        while True:
            try:
                written = self._execute(rows)
            except OperationalError as exc:
                # Locked by another worker, or the server went away: retry with back-off.
                if time.monotonic() + pause > deadline:
                    log.error("prediction log: %d rows not written: %s", len(rows), exc.orig)
                    self._count_dropped("write_failed", len(rows))
                    return
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            except Exception:
                log.exception("prediction log: %d rows not written", len(rows))
                self._count_dropped("write_failed", len(rows))
                return
            if self.metrics is not None:
                self.metrics.prediction_log_written.inc(written)
            if written < len(rows):
                self._count_dropped("duplicate", len(rows) - written)
            return

    def _execute(self, rows: list[dict[str, Any]]) -> int:
        """Rows inserted; repeated (request_id, record_index) pairs are skipped, not fatal."""
        if self._insert is not None:
            with self.engine.begin() as connection:
                result = connection.execute(self._insert, rows)
                if result.returns_rows:  # PostgreSQL: the ids of rows really inserted
                    return len(result.all())
                count = result.rowcount  # sqlite3 sums executemany's row counts
            return count if count is not None and count >= 0 else len(rows)
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(predictions), rows)
            return len(rows)
        except IntegrityError:
            written = 0
            for row in rows:  # some other dialect: find the duplicates one by one
                try:
                    with self.engine.begin() as connection:
                        connection.execute(insert(predictions), [row])
                    written += 1
                except IntegrityError:
                    pass
            return written

    def _count_dropped(self, reason: str, rows: int) -> None:
        if self.metrics is not None:
            self.metrics.prediction_log_dropped.labels(reason).inc(rows)


def _row_count(answer: Mapping[str, Any] | None) -> int:
    if answer is not None and "predictions" in answer:
        return max(1, len(answer["predictions"]))
    return 1


def _insert_ignoring_duplicates(engine: Engine) -> Any:
    if is_sqlite(engine):
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(predictions).on_conflict_do_nothing()
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        # executemany's rowcount is not reliable there; RETURNING counts exactly.
        return pg_insert(predictions).on_conflict_do_nothing().returning(predictions.c.id)
    return None
