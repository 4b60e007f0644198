"""Every predict answer (and every failure) as rows of the ``predictions`` table.

Writing happens off the request path: ``PredictionRecorder.record`` only puts
the raw objects on a bounded queue (``put_nowait``: it never blocks and never
raises into a request) and a writer thread batch-inserts them every
``flush_interval_ms`` or as soon as ``batch_size`` rows wait.

Nothing is dropped because the database is slow or away (issue 28): a full
queue spills the request's rows to a bounded local file (``spill_file.py``),
and so does a batch the database would not take within ``write_retry_s``;
while the database is unavailable batches go straight to the file and one
insert a ``probe_interval_s`` asks whether it is back. Once inserts succeed
and the queue is short, the writer replays the file, oldest rows first. Only
a full spill folder drops rows (counted, reason ``spill_full``, and logged as
an error); ``status()`` says which of these is happening (``/readyz``).

Layout: one row per record. A ``{"records": [...]}`` request of n records
gives n rows sharing the request id, told apart by ``record_index``
(0..n-1) and all carrying ``batch_size`` n; a single-record request is index 0
of batch size 1. Feedback joins on ``(request_id, record_index)``. A failed
request is one row (index 0, the whole body as input, no output, its HTTP
status and error code). A caller that reuses an ``X-Request-ID`` keeps the
first row; the repeat is counted as dropped (reason ``duplicate``).

``score`` is extracted at write time so evaluation needs no JSON parsing, by
the one rule the holdout and shadow comparisons use too (``scores.score_of``):
the output's only value, or the one named ``score``, ``probability``,
``probabilities``, ``scores`` (in that order), when it is one finite number
(or a one-element list).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    literal,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)

from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.scores import score_of
from logic_service.storage import log_aggregates
from logic_service.storage.database import is_sqlite, metadata
from logic_service.storage.payloads import PayloadPolicy
from logic_service.storage.spill_file import SpillFile

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
    """A bounded queue, the thread that drains it into ``predictions``, and its spill file.

    ``start`` is separate from construction so the owner decides when writing
    begins (the app's lifespan); records put before it simply wait in the queue.
    ``spill`` None keeps the old bounded behaviour: beyond the queue, counted drops.
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
        spill: SpillFile | None = None,
        probe_interval_s: float = 1.0,
        payloads: PayloadPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.payloads = payloads or PayloadPolicy()  # storage.payloads: full, sampled, none
        self.metrics = metrics
        self.batch_size = batch_size
        self.interval = flush_interval_ms / 1000.0
        self.write_retry_s = write_retry_s
        self.spill = spill
        self.probe_interval_s = probe_interval_s
        self._queue: queue.Queue[_Entry] = queue.Queue(maxsize=queue_size)
        self._enqueued = itertools.count(1)
        self._last_enqueued = 0
        self._processed = 0
        self._done = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._insert = _insert_ignoring_duplicates(engine)
        self._outage = _Outage()

    # ---- request path ------------------------------------------------------------------------

    def record(
        self,
        context: RequestContext,
        body: Any,
        answer: Mapping[str, Any] | None,
        status: int,
        error: str | None = None,
    ) -> bool:
        """Queue one request's outcome (or spill it); False when it was dropped (counted)."""
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
            return self._overflow(entry)
        except Exception:  # recording must never fail an answer
            log.exception("could not queue prediction %s for the log", context.request_id)
            self._count_dropped("invalid", _row_count(answer))
            return False
        self._last_enqueued = next(self._enqueued)
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def _overflow(self, entry: _Entry) -> bool:
        """The queue is full: this request's rows go to the spill file (an append, no fsync)."""
        try:
            rows = entry.rows()
        except Exception:
            log.exception("unloggable prediction %s", entry.request_id)
            self._count_dropped("invalid", _row_count(entry.answer))
            return False
        if self.spill is None:
            self._count_dropped("queue_full", len(rows))
            return False
        return self._spill_rows(rows)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="tierkit-prediction-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write (or spill) what is queued, then end the writer; called at the app's shutdown."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log writer did not finish within %.0f s", timeout)
            self._thread = None
        if self.spill is not None:
            self.spill.close()  # what is still spilled waits there for the next start

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything queued before this call is written, spilled or dropped."""
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

    def settle(self, timeout: float = 30.0) -> bool:
        """``flush``, then wait until the spill file is replayed too (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        if not self.flush(timeout):
            return False
        while self.spill is not None and self.spill.pending_bytes() > 0:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.05)
        return True

    def depth(self) -> int:
        return self._queue.qsize()

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` says about the log: state, queue, spill file, counts (this process)."""
        pending = self.spill.pending_bytes() if self.spill is not None else 0
        outage = self._outage
        if not outage.database_up:
            state = "database_unavailable"
        elif outage.refused_recently():
            state = "spill_full"
        elif pending:
            state = "replaying"
        else:
            state = "writing"
        return {
            "state": state,
            "queue_depth": self._queue.qsize(),
            "spill_bytes": pending,
            "spill_max_bytes": self.spill.max_bytes if self.spill is not None else 0,
            "spilled_rows": outage.spilled,
            "replayed_rows": outage.replayed,
            "dropped_at_cap_rows": outage.refused,
            "database_down_since": outage.down_since,
        }

    # ---- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            stopping = self._stopping.is_set()
            self._drain(final=stopping)
            if stopping and self._queue.empty():
                return
            self._replay()

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
        """Insert ``rows``; if the database cannot take them in time, spill them."""
        if self.spill is not None and not self._outage.database_up:
            if time.monotonic() < self._outage.next_probe:
                self._spill_rows(rows)  # still down: no waiting, the queue keeps moving
                return
            patience = 0.0  # one probe
        else:
            patience = min(self.write_retry_s, 5.0) if final else self.write_retry_s
        deadline = time.monotonic() + patience
        pause = 0.05
        while True:
            try:
                written, rejected = self._insert_isolating(rows)
            except DBAPIError as exc:
                # Locked by another worker, or the server went away: retry with back-off.
                if time.monotonic() + pause <= deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                if self.spill is None:
                    log.error("prediction log: %d rows not written: %s", len(rows), exc.orig)
                    self._count_dropped("write_failed", len(rows))
                    return
                self._database_down(exc)
                self._spill_rows(rows)
                return
            self._database_back()
            self._count_written(written, len(rows) - written - rejected)
            return

    def _replay(self) -> None:
        """While the database takes inserts and the queue is short, write back spilled rows."""
        if self.spill is None:
            return
        if not self._outage.database_up and time.monotonic() < self._outage.next_probe:
            return  # the first replayed batch is the probe: is the database back?
        if self.spill.pending_bytes() == 0:
            if not self._outage.database_up:
                self._probe()  # nothing to replay: ask anyway, so /readyz stops saying "down"
            return
        while self._queue.qsize() < self.batch_size and not self._stopping.is_set():
            try:
                handed = self.spill.replay_some(self._write_replayed, self.batch_size)
            except DBAPIError as exc:
                self._database_down(exc)
                return
            except OSError:
                log.exception("prediction log: cannot read the spill folder")
                return
            if handed == 0:
                return
            self._database_back()

    def _probe(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(literal(1)))
        except DBAPIError as exc:
            self._database_down(exc)
            return
        self._database_back()

    def _write_replayed(self, spilled: list[dict[str, Any]]) -> None:
        rows = [_row_from_spill(row) for row in spilled]
        written, _rejected = self._insert_isolating(rows)
        # rows already in the table were written by an earlier, interrupted replay
        self._count_written(written, 0)
        self._outage.replayed += len(rows)
        if self.metrics is not None:
            self.metrics.prediction_log_replayed.inc(len(rows))
            self.metrics.prediction_log_spill_bytes.set(self.spill.pending_bytes())

    def _insert_isolating(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """(written, rejected): a row the database refuses as data is dropped alone.

        Raises ``DBAPIError`` only when the database is unavailable (connection,
        lock, disk): those rows are kept (spilled), never dropped.
        """
        try:
            return self._execute(rows), 0
        except DBAPIError as exc:
            if _unavailable(exc):
                raise
            problem: Any = exc.orig
        except Exception as exc:  # a value no bind processor takes
            problem = exc
        if len(rows) == 1:
            log.error("prediction log: row %s refused: %s", rows[0]["request_id"], problem)
            self._count_dropped("rejected", 1)
            return 0, 1
        written = rejected = 0
        for row in rows:  # find the one the database refuses
            w, r = self._insert_isolating([row])
            written, rejected = written + w, rejected + r
        return written, rejected

    def _spill_rows(self, rows: list[dict[str, Any]]) -> bool:
        assert self.spill is not None
        try:
            kept = self.spill.append(rows)
        except OSError as exc:
            log.error("prediction log: cannot write the spill folder: %s", exc)
            kept = False
        outage = self._outage
        if kept:
            with outage.lock:  # the request path and the writer both spill
                first = outage.spilled_since_log == 0
                outage.spilled += len(rows)
                outage.spilled_since_log += len(rows)
            if self.metrics is not None:
                self.metrics.prediction_log_spilled.inc(len(rows))
                self.metrics.prediction_log_spill_bytes.set(self.spill.pending_bytes(False))
            if first:
                log.warning(
                    "prediction log: the database is behind; spilling rows to %s",
                    self.spill.directory,
                )
            return True
        with outage.lock:
            outage.refused += len(rows)
            outage.refused_at = time.monotonic()
            say = time.monotonic() - outage.refusal_logged_at > 10.0
            if say:
                outage.refusal_logged_at = time.monotonic()
        self._count_dropped("spill_full", len(rows))
        if say:
            log.error(
                "prediction log: spill folder %s is full (%d bytes, cap %d): %d rows DROPPED "
                "so far; the database has been unable to keep up. Free the database or "
                "raise storage.spill.max_bytes",
                self.spill.directory,
                self.spill.pending_bytes(False),
                self.spill.max_bytes,
                outage.refused,
            )
        return False

    def _database_down(self, exc: DBAPIError) -> None:
        outage = self._outage
        outage.next_probe = time.monotonic() + self.probe_interval_s
        if outage.database_up:
            outage.database_up = False
            outage.down_since = datetime.now(UTC).isoformat()
            log.error("prediction log: database unavailable, spilling rows: %s", exc.orig)
            if self.metrics is not None:
                self.metrics.prediction_log_database_up.set(0)

    def _database_back(self) -> None:
        outage = self._outage
        if not outage.database_up:
            outage.database_up, outage.down_since = True, None
            log.warning("prediction log: database back; replaying spilled rows")
            if self.metrics is not None:
                self.metrics.prediction_log_database_up.set(1)
        if outage.spilled_since_log:
            with outage.lock:
                spilled, outage.spilled_since_log = outage.spilled_since_log, 0
            log.info("prediction log: %d rows spilled in this episode", spilled)

    def _count_written(self, written: int, duplicates: int) -> None:
        if self.metrics is not None:
            self.metrics.prediction_log_written.inc(written)
        if duplicates > 0:
            self._count_dropped("duplicate", duplicates)

    def _execute(self, rows: list[dict[str, Any]]) -> int:
        """Rows inserted; repeated (request_id, record_index) pairs are skipped, not fatal."""
        self.payloads.apply(rows)
        with self.engine.begin() as connection:
            return insert_with_aggregates(connection, self._insert, rows)

    def _count_dropped(self, reason: str, rows: int) -> None:
        if self.metrics is not None:
            self.metrics.prediction_log_dropped.labels(reason).inc(rows)


@dataclass
class _Outage:
    """The writer's view of the database and the spill file (its thread writes, others read)."""

    database_up: bool = True
    down_since: str | None = None
    next_probe: float = 0.0
    spilled: int = 0
    spilled_since_log: int = 0
    replayed: int = 0
    refused: int = 0
    refused_at: float = -1e9
    refusal_logged_at: float = -1e9
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refused_recently(self) -> bool:
        return time.monotonic() - self.refused_at < 10.0


def _unavailable(exc: DBAPIError) -> bool:
    """The database cannot take inserts now (server gone, locked, disk): keep the rows."""
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    # a row's value or constraint is the problem: that row alone is refused
    return not isinstance(exc, DataError | IntegrityError)


def _row_from_spill(row: dict[str, Any]) -> dict[str, Any]:
    """A row as ``orjson`` wrote it, with its times datetimes again."""
    for name in ("ts", "feedback_at"):
        if isinstance(row.get(name), str):
            row[name] = datetime.fromisoformat(row[name])
    return row


def _row_count(answer: Mapping[str, Any] | None) -> int:
    if answer is not None and "predictions" in answer:
        return max(1, len(answer["predictions"]))
    return 1


def _insert_ignoring_duplicates(engine: Engine) -> Any:
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

    ``statement`` is ``_insert_ignoring_duplicates``'s: RETURNING names the rows
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
