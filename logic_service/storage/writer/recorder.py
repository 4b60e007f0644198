"""The prediction log's writer: a bounded queue, the thread that drains it, its spill file.

Writing happens off the request path: ``PredictionRecorder.record`` only puts
the raw objects on a bounded queue (``put_nowait``: it never blocks and never
raises into a request) and a writer thread batch-inserts them every
``flush_interval_ms`` or as soon as ``batch_size`` rows wait, with their
aggregates in the same transaction (``storage/prediction_log.py``).

Nothing is dropped because the database is slow or away (issue 28): a full
queue spills the request's rows to a bounded local file (``spill_file.py``),
and so does a batch the database would not take within ``write_retry_s``;
while the database is unavailable batches go straight to the file and one
insert a ``probe_interval_s`` asks whether it is back (``outage.py``). Once
inserts succeed and the queue is short, the writer replays the file, oldest
rows first. Only a full spill folder drops rows (counted, reason
``spill_full``, and logged as an error); ``status()`` says which of these is
happening (``/readyz``). A caller that reuses an ``X-Request-ID`` keeps the
first row; the repeat is counted as dropped (reason ``duplicate``).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.storage.payloads import PayloadPolicy
from logic_service.storage.prediction_log import (
    LogEntry,
    insert_ignoring_duplicates,
    insert_with_aggregates,
    row_count,
    row_from_spill,
)
from logic_service.storage.writer.outage import Outage, unavailable
from logic_service.storage.writer.spill_file import SpillFile

# the name operators filter the log's lines by, from before the writer had a module
log = logging.getLogger("logic_service.storage.prediction_log")


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
        self._queue: queue.Queue[LogEntry] = queue.Queue(maxsize=queue_size)
        self._enqueued = itertools.count(1)
        self._last_enqueued = 0
        self._processed = 0
        self._done = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._insert = insert_ignoring_duplicates(engine)
        self._outage = Outage(spill, metrics, probe_interval_s, self._count_dropped)

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
            entry = LogEntry(
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
            self._count_dropped("invalid", row_count(answer))
            return False
        self._last_enqueued = next(self._enqueued)
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def _overflow(self, entry: LogEntry) -> bool:
        """The queue is full: this request's rows go to the spill file (an append, no fsync)."""
        try:
            rows = entry.rows()
        except Exception:
            log.exception("unloggable prediction %s", entry.request_id)
            self._count_dropped("invalid", row_count(entry.answer))
            return False
        if self.spill is None:
            self._count_dropped("queue_full", len(rows))
            return False
        return self._outage.spill_rows(rows)

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
        state = outage.state(pending)
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
            entries: list[LogEntry] = []
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
                    self._count_dropped("invalid", row_count(entry.answer))
            if rows:
                self._write(rows, final)
            with self._done:
                self._processed += len(entries)
                self._done.notify_all()

    def _write(self, rows: list[dict[str, Any]], final: bool) -> None:
        """Insert ``rows``; if the database cannot take them in time, spill them."""
        if self.spill is not None and not self._outage.database_up:
            if time.monotonic() < self._outage.next_probe:
                self._outage.spill_rows(rows)  # still down: no waiting, the queue keeps moving
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
                self._outage.down(exc)
                self._outage.spill_rows(rows)
                return
            self._outage.back()
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
                self._outage.down(exc)
                return
            except OSError:
                log.exception("prediction log: cannot read the spill folder")
                return
            if handed == 0:
                return
            self._outage.back()

    def _probe(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(select(literal(1)))
        except DBAPIError as exc:
            self._outage.down(exc)
            return
        self._outage.back()

    def _write_replayed(self, spilled: list[dict[str, Any]]) -> None:
        rows = [row_from_spill(row) for row in spilled]
        written, _rejected = self._insert_isolating(rows)
        # rows already in the table were written by an earlier, interrupted replay
        self._count_written(written, 0)
        self._outage.replayed_rows(len(rows))

    def _insert_isolating(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """(written, rejected): a row the database refuses as data is dropped alone.

        Raises ``DBAPIError`` only when the database is unavailable (connection,
        lock, disk): those rows are kept (spilled), never dropped.
        """
        try:
            return self._execute(rows), 0
        except DBAPIError as exc:
            if unavailable(exc):
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
