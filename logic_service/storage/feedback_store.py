"""Storing a record's outcome (label or reward) and moving its label statistics with it.

Last write wins: a write sets both ``label`` and ``reward`` and counts itself
in ``feedback_updates``. The aggregates (``log_aggregates``) must then lose
the old outcome and gain the new one, in the same transaction, in the bucket
of the prediction's time. Two writers racing on one record must not both
subtract the same old outcome. On PostgreSQL the read takes the row lock
(``FOR UPDATE``), so racing writers queue instead of retrying: under READ
COMMITTED an optimistic loser would wait for the winner's commit and then
lose again, and four writers on one record could lose twenty times in a row.
SQLite renders no ``FOR UPDATE`` (one writer at a time anyway), so the UPDATE
also applies only if ``feedback_updates`` is still what was read, and a loser
reads again. A row logged before the aggregates existed and not yet summed by
the back-fill moves nothing: the back-fill counts its outcome as it finds it
(``aggregate_backfill``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from logic_service.storage.aggregate_backfill import is_summed
from logic_service.storage.log_aggregates import move_outcome, outcome_of
from logic_service.storage.prediction_log import predictions

ATTEMPTS = 20


def store_feedback(
    engine: Engine, request_id: str, index: int, label: float | None, reward: float | None
) -> Any:
    """The record after the write (model, version, label, reward, feedback_updates), or None."""
    table = predictions
    key = (table.c.request_id == request_id) & (table.c.record_index == index)
    read = (
        select(
            table.c.id,
            table.c.ts,
            table.c.model,
            table.c.version,
            table.c.arm,
            table.c.status,
            table.c.score,
            table.c.label,
            table.c.reward,
            table.c.feedback_updates,
        )
        .where(key)
        .with_for_update()
    )
    for _ in range(ATTEMPTS):
        with engine.begin() as connection:
            before = connection.execute(read).first()
            if before is None:
                return None
            written = connection.execute(
                update(table)
                .where(key, table.c.feedback_updates == before.feedback_updates)
                .values(
                    label=label,
                    reward=reward,
                    feedback_at=datetime.now(UTC),
                    feedback_updates=table.c.feedback_updates + 1,
                )
            )
            if written.rowcount != 1:
                continue  # another write came first: read its outcome and try again
            row = before._asdict()
            if is_summed(connection, row["id"]):  # else the back-fill sums the new outcome
                move_outcome(
                    connection, row, outcome_of(row), outcome_of({"label": label, "reward": reward})
                )
            return connection.execute(
                select(
                    table.c.model,
                    table.c.version,
                    table.c.label,
                    table.c.reward,
                    table.c.feedback_updates,
                ).where(key)
            ).first()
    raise RuntimeError(f"feedback on {request_id!r}[{index}]: {ATTEMPTS} concurrent writes won")
