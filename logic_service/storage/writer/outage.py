"""The writer's view of a database that is behind or away, and the rows it spills meanwhile.

The recorder (``recorder.py``) decides when to write, spill, probe and
replay; this module keeps what that costs and says it: whether the database
is up and since when, rows spilled, replayed and refused at the spill cap,
the metrics and log lines of each, and the state ``/readyz`` reports. Its
counters are written by the writer thread and by request threads (a full
queue spills from the request path), so they change under a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from logic_service.observability.metrics import Metrics
from logic_service.storage.writer.spill_file import SpillFile

log = logging.getLogger("logic_service.storage.prediction_log")

REFUSALS_LOGGED_EVERY_S = 10.0


@dataclass
class Outage:
    """Database up or down, and the spill file's counts (this process)."""

    spill: SpillFile | None
    metrics: Metrics | None
    probe_interval_s: float
    count_dropped: Callable[[str, int], None]
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
        return time.monotonic() - self.refused_at < REFUSALS_LOGGED_EVERY_S

    def state(self, pending_bytes: int) -> str:
        if not self.database_up:
            return "database_unavailable"
        if self.refused_recently():
            return "spill_full"
        return "replaying" if pending_bytes else "writing"

    def spill_rows(self, rows: list[dict[str, Any]]) -> bool:
        """Append ``rows`` to the spill file; False (counted, logged) when it is full."""
        assert self.spill is not None
        try:
            kept = self.spill.append(rows)
        except OSError as exc:
            log.error("prediction log: cannot write the spill folder: %s", exc)
            kept = False
        if kept:
            with self.lock:  # the request path and the writer both spill
                first = self.spilled_since_log == 0
                self.spilled += len(rows)
                self.spilled_since_log += len(rows)
            if self.metrics is not None:
                self.metrics.prediction_log_spilled.inc(len(rows))
                self.metrics.prediction_log_spill_bytes.set(self.spill.pending_bytes(False))
            if first:
                log.warning(
                    "prediction log: the database is behind; spilling rows to %s",
                    self.spill.directory,
                )
            return True
        with self.lock:
            self.refused += len(rows)
            self.refused_at = time.monotonic()
            say = time.monotonic() - self.refusal_logged_at > REFUSALS_LOGGED_EVERY_S
            if say:
                self.refusal_logged_at = time.monotonic()
        self.count_dropped("spill_full", len(rows))
        if say:
            log.error(
                "prediction log: spill folder %s is full (%d bytes, cap %d): %d rows DROPPED "
                "so far; the database has been unable to keep up. Free the database or "
                "raise storage.spill.max_bytes",
                self.spill.directory,
                self.spill.pending_bytes(False),
                self.spill.max_bytes,
                self.refused,
            )
        return False

    def replayed_rows(self, rows: int) -> None:
        self.replayed += rows
        if self.metrics is not None and self.spill is not None:
            self.metrics.prediction_log_replayed.inc(rows)
            self.metrics.prediction_log_spill_bytes.set(self.spill.pending_bytes())

    def down(self, exc: DBAPIError) -> None:
        self.next_probe = time.monotonic() + self.probe_interval_s
        if self.database_up:
            self.database_up = False
            self.down_since = datetime.now(UTC).isoformat()
            log.error("prediction log: database unavailable, spilling rows: %s", exc.orig)
            if self.metrics is not None:
                self.metrics.prediction_log_database_up.set(0)

    def back(self) -> None:
        if not self.database_up:
            self.database_up, self.down_since = True, None
            log.warning("prediction log: database back; replaying spilled rows")
            if self.metrics is not None:
                self.metrics.prediction_log_database_up.set(1)
        if self.spilled_since_log:
            with self.lock:
                spilled, self.spilled_since_log = self.spilled_since_log, 0
            log.info("prediction log: %d rows spilled in this episode", spilled)


def unavailable(exc: DBAPIError) -> bool:
    """The database cannot take inserts now (server gone, locked, disk): keep the rows."""
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    # a row's value or constraint is the problem: that row alone is refused
    return not isinstance(exc, DataError | IntegrityError)
