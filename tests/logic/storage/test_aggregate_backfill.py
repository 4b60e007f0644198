"""A log written before the aggregates existed is summed after the upgrade, each row once.

A real database is migrated to revision 0003 (the release before aggregates),
filled the way that release wrote (plain inserts, feedback straight into the
row), then upgraded to head as a replica does at start. New rows are then
written through the writer's flush, feedback lands on old and new rows, and
the back-fill runs in small batches, with feedback in between and, in the last
test, racing it from other connections. Every number read from the aggregates
must then equal a scan of the rows (``test_log_aggregates``' reference), on
real SQLite and real PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command

from logic_service.settings.storage import RetentionSettings
from logic_service.storage.aggregate_backfill import backfill_batch, backfill_state
from logic_service.storage.database import create_engine
from logic_service.storage.feedback_store import store_feedback
from logic_service.storage.log_aggregates import prediction_buckets
from logic_service.storage.migrations import runner
from logic_service.storage.prediction_log import predictions
from logic_service.storage.retention import Retention

from .test_log_aggregates import BASE, _at_once, check_against_scan, random_log, write

WINDOWS = ((0, 1800), (30, 600), (50, 130), (60, 10), (1200, 10))


@pytest.fixture
def old_engine(both_urls: str) -> Iterator[sa.Engine]:
    """A database at revision 0003, as the release before the aggregates left it."""
    url = both_urls
    engine = create_engine(url)
    with engine.connect() as connection:
        command.upgrade(runner.alembic_config(connection), "0003")
        connection.commit()
    yield engine
    engine.dispose()


def log_like_0003(engine: sa.Engine, seed: int) -> int:
    """Rows inserted without aggregates, a fifth of them labelled in place; the rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for row in random_log(seed):
        if row["status"] == 200 and rng.random() < 0.2:
            row = row | {"label": float(rng.integers(2)) if row["model"] == "ctr" else 9.5}
        rows.append(row)
    unique: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:  # a repeated request id is one row (the first), as the writer keeps it
        unique.setdefault((row["request_id"], row["record_index"]), row)
    with engine.begin() as connection:
        connection.execute(sa.insert(predictions), list(unique.values()))
    return len(unique)


def some_feedback(engine: sa.Engine, seed: int, share: float) -> None:
    """Labels (new and overwritten) on a share of all records, old and new."""
    rng = np.random.default_rng(seed)
    with engine.connect() as connection:
        keys = connection.execute(
            sa.select(predictions.c.request_id, predictions.c.record_index, predictions.c.model)
        ).all()
    for request_id, index, model in keys:
        if rng.random() < share:
            label = float(rng.integers(2)) if model == "ctr" else float(rng.normal(10, 3))
            store_feedback(engine, request_id, index, label, None)


def check_all_windows(engine: sa.Engine) -> None:
    compared = 0
    for model in ("ctr", "price"):
        for offset_s, length_s in WINDOWS:
            since = BASE + timedelta(seconds=offset_s)
            compared += check_against_scan(
                engine, model, since, since + timedelta(seconds=length_s)
            )
    assert compared > 20


def upgrade(engine: sa.Engine) -> int:
    runner.upgrade(engine)
    with engine.connect() as connection:
        top = connection.execute(sa.select(sa.func.max(predictions.c.id))).scalar()
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(prediction_buckets)).scalar()
            == 0
        )
    state = backfill_state(engine)
    assert state is not None and (state.done_id, state.upto_id) == (0, top)
    return top


def test_old_rows_new_rows_and_feedback_on_both_are_summed_once(old_engine: sa.Engine) -> None:
    engine = old_engine
    log_like_0003(engine, seed=21)
    upgrade(engine)
    write(engine, random_log(22))  # this release's writer: summed as inserted
    some_feedback(engine, seed=23, share=0.2)  # old rows not summed yet, and new ones
    steps: list[Any] = []
    while (step := backfill_batch(engine, 37)) is not None:
        steps.append(step)
        some_feedback(engine, seed=24 + len(steps), share=0.01)  # on summed and unsummed rows
    assert steps[-1].finished and sum(s.rows for s in steps) > 400
    assert [s.done_id for s in steps] == sorted(s.done_id for s in steps)
    assert backfill_batch(engine, 37) is None  # done: nothing summed twice
    check_all_windows(engine)


def test_a_retention_pass_sums_old_rows_before_it_deletes_any(old_engine: sa.Engine) -> None:
    """Four days on, every old row is past ``predictions_days``: summed first, then deleted."""
    engine = old_engine
    rows = log_like_0003(engine, seed=31)
    upgrade(engine)
    later = time.time() + 4 * 86_400
    settings = RetentionSettings(batch_rows=100, pause_ms=0)
    report = Retention(engine, settings, clock=lambda: later).run_pass()
    assert report.completed and report.backfilled == rows == report.predictions
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(predictions)).scalar() == 0
        minutes = connection.execute(
            sa.select(sa.func.sum(prediction_buckets.c.records)).where(
                prediction_buckets.c.bucket_s == 60
            )
        ).scalar()
    assert minutes == rows  # the 1-minute aggregates (kept 90 days) hold every old row


def test_feedback_racing_the_back_fill_is_counted_once(old_engine: sa.Engine) -> None:
    """Other connections label old rows while batches sum them: each outcome lands once."""
    engine = old_engine
    log_like_0003(engine, seed=41)
    upgrade(engine)

    def work(own: sa.Engine, w: int) -> None:
        if w == 0:
            while backfill_batch(own, 5) is not None:
                pass
        else:
            some_feedback(own, seed=41 + w, share=0.3)

    assert _at_once(engine, 3, work) == []
    assert backfill_batch(engine, 5) is None
    check_all_windows(engine)
