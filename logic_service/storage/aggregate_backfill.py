"""Summing the rows logged before the aggregates existed, so an upgrade keeps its history.

Revision 0004 created the aggregate tables empty and wrote down, in
``log_aggregate_backfill``, the highest prediction id of that moment
(``upto_id``): rows up to it were logged without aggregates, every row after
it is summed by the writer as it is inserted. The retention pass
(``retention.py``) then sums the old rows, ``batch_rows`` at a time from the
low end of the key, before it deletes anything (a row deleted unsummed would be
lost to the dashboards for good), and moves ``done_id`` in the same
transaction as its upserts: a batch is summed exactly once, and a pass that
stops goes on where it stopped.

Feedback on an old row must be summed exactly once too. ``store_feedback``
asks ``is_summed`` after its UPDATE, inside its write transaction: a row not
yet summed has its new outcome counted by the batch that sums it, so the
feedback moves nothing; a summed row's outcome is moved as usual. A batch
begins with a no-op UPDATE of its state row, which on SQLite takes the write
lock before it reads the rows and on PostgreSQL locks that row to its commit;
``is_summed`` reads the row under a share lock when it is not sure. So a
feedback that changed a row the batch read with its old outcome waits for the
batch and then moves the outcome, and a batch that starts after a feedback
read the state waits for that feedback and reads the new outcome. (Locking
the batch's rows instead cost PostgreSQL a write to each: p99 1.1 s a batch.)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, String, Table, select, update
from sqlalchemy.engine import Connection, Engine

from logic_service.storage.database import metadata
from logic_service.storage.log_aggregates import Deltas
from logic_service.storage.prediction_log import predictions

LOG = "predictions"  # the one log summed so far; the key leaves room for others

log_aggregate_backfill = Table(
    "log_aggregate_backfill",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("upto_id", BigInteger, nullable=False),  # rows with id <= this predate aggregates
    Column("done_id", BigInteger, nullable=False),  # rows with id <= this are summed
)

# the one row of the back-fill's state
_STATE = select(log_aggregate_backfill.c.done_id, log_aggregate_backfill.c.upto_id).where(
    log_aggregate_backfill.c.name == LOG
)

# what ``Deltas.add_rows`` reads of a row
_SUMMED_COLUMNS = (
    "id",
    "ts",
    "model",
    "version",
    "arm",
    "api_version",
    "strategy",
    "status",
    "error",
    "record_index",
    "latency_ms",
    "score",
    "label",
    "reward",
)


@dataclass(frozen=True)
class BackfillStep:
    rows: int  # rows summed by this batch
    done_id: int
    upto_id: int

    @property
    def finished(self) -> bool:
        return self.done_id >= self.upto_id


def is_summed(connection: Connection, prediction_id: int) -> bool:
    """Is this row in the aggregates (a feedback write must move its outcome there)?

    Called inside the feedback's write transaction, after its UPDATE. "Summed"
    never goes back, so an unlocked read that says so is final; otherwise the
    state row is read again under a share lock, which waits for a batch in
    progress (it holds that row from its first statement) to commit.
    """
    state = connection.execute(_STATE).first()
    if state is None or prediction_id > state.upto_id or prediction_id <= state.done_id:
        return True
    state = connection.execute(_STATE.with_for_update(read=True)).one()
    return prediction_id <= state.done_id


def backfill_batch(engine: Engine, batch_rows: int) -> BackfillStep | None:
    """Sum the next ``batch_rows`` old rows in one transaction; None when nothing is left."""
    table, state = predictions, log_aggregate_backfill
    known = backfill_state(engine)
    if known is None or known.finished:  # the usual case: no write lock taken to find out
        return None
    with engine.begin() as connection:
        # The write lock first (SQLite begins a transaction at its first write; on
        # PostgreSQL this locks the state row), then read: no feedback write can
        # change a row of the batch between this read and the commit.
        claimed = connection.execute(
            update(state)
            .where(state.c.name == LOG, state.c.done_id < state.c.upto_id)
            .values(done_id=state.c.done_id)
        )
        if claimed.rowcount != 1:
            return None
        done, upto = connection.execute(_STATE).one()
        rows = (
            connection.execute(
                select(*(table.c[name] for name in _SUMMED_COLUMNS))
                .where(table.c.id > done, table.c.id <= upto)
                .order_by(table.c.id)
                .limit(batch_rows)
            )
            .mappings()
            .all()
        )
        Deltas().add_rows(rows).write(connection)
        # a short batch ends the range (retention may have taken the rest)
        reached = rows[-1]["id"] if len(rows) == batch_rows else upto
        connection.execute(update(state).where(state.c.name == LOG).values(done_id=reached))
    return BackfillStep(len(rows), reached, upto)


def backfill_state(engine: Engine) -> BackfillStep | None:
    """Where the back-fill stands (None on a database that never had one to do)."""
    with engine.connect() as connection:
        row = connection.execute(_STATE).first()
    return None if row is None else BackfillStep(0, row.done_id, row.upto_id)
