"""Bounded storage: old log rows and aggregates deleted in small batches, off the request path.

A pass (every ``storage.retention.interval_s``) runs in exactly one process of
all replicas, the holder of the ``prediction-log-retention`` lease
(``rollout_state.RolloutStore.take_lease``, renewed after every batch; a pass
that loses it stops). After an upgrade to revision 0004 it first sums the rows
logged before the aggregates existed (``aggregate_backfill``), so none is
deleted unsummed. Then it deletes

- raw ``predictions`` rows older than ``predictions_days``, walking the
  primary key from its low end ``batch_rows`` at a time: rows are appended in
  time order, so the oldest have the smallest ids and each batch is one short
  index range; it stops at the first batch with nothing old in it (a row
  replayed late with an old time is deleted once the rows before it are);
- 1-minute aggregates older than ``aggregates_days`` and 10-second ones older
  than ``fine_aggregates_hours``, an hour of buckets per model at a time;

each batch its own short transaction, followed by a pause of at least
``pause_ms`` and long enough that deleting takes at most ``busy_share`` of the
pass's time: the writer's flush is never queued behind a long delete, and on
a machine short of cores the pass yields the CPU to serving (measured:
docs/prediction_log.md). On SQLite the
write-ahead log is then checkpointed and truncated
(``PRAGMA wal_checkpoint(TRUNCATE)``); freed pages are reused by new rows, so
the file stops growing instead of shrinking. On PostgreSQL the same batched
deletes run (why not daily partitions: docs/prediction_log.md) and autovacuum
reclaims the space.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Event

from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Engine

from logic_service.settings.storage import RetentionSettings
from logic_service.storage.aggregate_backfill import backfill_batch
from logic_service.storage.database import is_sqlite
from logic_service.storage.log_aggregates import (
    COARSE_S,
    FINE_S,
    prediction_buckets,
    prediction_label_buckets,
)
from logic_service.storage.prediction_log import predictions, utc
from logic_service.storage.rollout_state import RolloutStore

log = logging.getLogger(__name__)

LEASE = "prediction-log-retention"
LEASE_TTL_S = 60.0
AGGREGATE_STEP_S = 3600  # one batch of aggregates: an hour of buckets of one model


@dataclass
class RetentionReport:
    predictions: int = 0
    aggregates: int = 0
    backfilled: int = 0  # rows logged before the aggregates existed, summed by this pass
    batches: int = 0
    completed: bool = True  # False: the lease was lost (another process goes on)
    checkpointed: bool = False
    nice: int | None = None  # a child process's nice value while it ran the pass
    cpu_policy: str | None = None  # a child process's scheduling policy (idle, other)


# (lease owner, stop event) -> the report of one pass run elsewhere (retention_process)
PassRunner = Callable[[str, Event], RetentionReport]


class Retention:
    """One pass of deletes, and the background loop that runs it in one process at a time."""

    def __init__(
        self,
        engine: Engine,
        settings: RetentionSettings,
        store: RolloutStore | None = None,
        clock: Callable[[], float] = time.time,
        *,
        owner: str | None = None,
        runner: PassRunner | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.store = store or RolloutStore(engine)
        self.clock = clock
        # a child process renews its parent's lease under the parent's name
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # None: passes run in this process's thread; else the lease holder hands them over
        self.runner = runner
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # a pass under way ends after its batch

    # ---- one pass --------------------------------------------------------------------------

    def run_pass(self) -> RetentionReport:
        """Delete what is past retention, batch by batch; False ``completed`` if the lease went."""
        report = RetentionReport()
        if not self._hold():
            report.completed = False
            return report
        report.completed = self._backfill(report)  # before any delete: no row lost unsummed
        if not report.completed:
            return report
        now = self.clock()
        cutoff = datetime.fromtimestamp(now, UTC) - timedelta(days=self.settings.predictions_days)
        report.completed = self._prune_predictions(cutoff, report)
        limits = (
            (COARSE_S, now - self.settings.aggregates_days * 86_400),
            (FINE_S, now - self.settings.fine_aggregates_hours * 3_600),
        )
        for table in (prediction_buckets, prediction_label_buckets):
            for width, before in limits:
                if report.completed:
                    report.completed = self._prune_aggregates(table, width, int(before), report)
        if is_sqlite(self.engine):
            report.checkpointed = self._checkpoint()
        return report

    def _backfill(self, report: RetentionReport) -> bool:
        """Sum the rows logged before revision 0004 (``aggregate_backfill``), paced as deletes."""
        while True:
            began = time.perf_counter()
            step = backfill_batch(self.engine, self.settings.batch_rows)
            if step is None:
                return True
            report.backfilled += step.rows
            if step.finished or report.batches % 50 == 0:  # progress on a long first pass
                log.info(
                    "aggregates back-fill: %d rows summed in this pass; ids up to %d of %d%s",
                    report.backfilled,
                    step.done_id,
                    step.upto_id,
                    " (done)" if step.finished else "",
                )
            if step.finished:
                return True
            if not self._between_batches(report, time.perf_counter() - began):
                return False

    @staticmethod
    def _say(report: RetentionReport) -> None:
        if report.predictions or report.aggregates or report.backfilled:
            log.info(
                "retention: %d prediction rows and %d aggregate rows deleted, %d old rows "
                "summed, in %d batches",
                report.predictions,
                report.aggregates,
                report.backfilled,
                report.batches,
            )

    def _hold(self) -> bool:
        return self.store.take_lease(LEASE, self.owner, LEASE_TTL_S, self.clock())

    def _between_batches(self, report: RetentionReport, busy_s: float) -> bool:
        """Pause (at least ``pause_ms``, and so the pass stays under ``busy_share``); renew."""
        report.batches += 1
        share = self.settings.busy_share
        pause = max(self.settings.pause_ms / 1000.0, busy_s * (1.0 / share - 1.0))
        if self.stopping.wait(pause):
            return False
        return self._hold()

    def _prune_predictions(self, cutoff: datetime, report: RetentionReport) -> bool:
        table, after = predictions, 0
        while True:
            began = time.perf_counter()
            with self.engine.connect() as connection:
                batch = connection.execute(
                    select(table.c.id, table.c.ts)
                    .where(table.c.id > after)
                    .order_by(table.c.id)
                    .limit(self.settings.batch_rows)
                ).all()
            if not any(utc(row.ts) < cutoff for row in batch):
                return True
            with self.engine.begin() as connection:
                # The batch's id range, not a list of its ids: one index range for the
                # database instead of batch_rows lookups, and no list to parse and plan.
                result = connection.execute(
                    delete(table).where(
                        table.c.id > after, table.c.id <= batch[-1].id, table.c.ts < cutoff
                    )
                )
            report.predictions += max(result.rowcount or 0, 0)
            after = batch[-1].id
            if not self._between_batches(report, time.perf_counter() - began):
                return False

    def _prune_aggregates(
        self, table: Table, width: int, before: int, report: RetentionReport
    ) -> bool:
        columns = table.c
        for model in self._models(table):
            while True:
                began = time.perf_counter()
                with self.engine.connect() as connection:
                    oldest = connection.execute(
                        select(func.min(columns.start)).where(
                            columns.model == model, columns.bucket_s == width
                        )
                    ).scalar()
                if oldest is None or oldest >= before:
                    break
                until = min(before, int(oldest) + AGGREGATE_STEP_S)
                with self.engine.begin() as connection:
                    result = connection.execute(
                        delete(table).where(
                            columns.model == model,
                            columns.bucket_s == width,
                            columns.start < until,
                        )
                    )
                report.aggregates += max(result.rowcount or 0, 0)
                if not self._between_batches(report, time.perf_counter() - began):
                    return False
        return True

    def _models(self, table: Table) -> list[str]:
        """Distinct models by index seeks (a loose index scan), not a scan of the table."""
        column = table.c.model
        found: list[str] = []
        with self.engine.connect() as connection:
            while True:
                query = select(func.min(column))
                if found:
                    query = query.where(column > found[-1])
                model = connection.execute(query).scalar()
                if model is None:
                    return found
                found.append(model)

    def _checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate it (SQLite); False if busy."""
        with self.engine.connect() as connection:
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        return busy == 0

    # ---- background thread ----------------------------------------------------------------

    def start(self) -> None:
        """A pass every ``interval_s`` in a thread of its own, the first one interval from now."""
        if self.settings.enabled and self._thread is None:
            self._thread = threading.Thread(
                target=self._forever, name="tierkit-retention", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ends the thread after its current batch."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _pass_as_configured(self) -> RetentionReport:
        """In this thread, or handed to the runner once this process holds the lease."""
        if self.runner is None:
            return self.run_pass()
        if not self._hold():  # only the lease holder starts a child
            return RetentionReport(completed=False)
        return self.runner(self.owner, self.stopping)

    def run_pass_as_configured(self) -> RetentionReport:
        """One pass now, as the background loop runs it (bench, tests), in a thread of its own."""
        reports: list[RetentionReport] = []
        worker = threading.Thread(
            target=lambda: (self._lower_priority(), reports.append(self._pass_as_configured())),
            name="tierkit-retention-pass",
        )
        worker.start()
        worker.join()
        if not reports:
            raise RuntimeError("the retention pass failed (see the log)")
        return reports[0]

    def _forever(self) -> None:
        self._lower_priority()
        while not self.stopping.wait(self.settings.interval_s):
            try:
                self._say(self._pass_as_configured())
            except Exception:  # a failed pass is retried next interval; serving goes on
                log.exception("retention pass failed")

    def _lower_priority(self) -> None:
        """Linux: this thread's nice value (per thread there), so serving threads go first.

        Not with a runner: its child is niced from exec, and would inherit this
        thread's value on top of that.
        """
        if self.runner is None and self.settings.nice and sys.platform.startswith("linux"):
            try:
                thread = threading.get_native_id()
                current = os.getpriority(os.PRIO_PROCESS, thread)  # added to, as `nice -n` does
                os.setpriority(os.PRIO_PROCESS, thread, min(19, current + self.settings.nice))
            except OSError as exc:
                log.warning("retention: nice %d not applied: %s", self.settings.nice, exc)
