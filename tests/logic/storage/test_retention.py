"""Retention passes on real SQLite and real PostgreSQL: only what is old goes, in small batches.

Rows are written through the writer's flush transaction at chosen times
(old ones interleaved with recent ones, a late row with an old time and a high
id), aggregates with them; a pass must delete exactly the rows and buckets past
their retention, never more per transaction than ``batch_rows``, keep the
answers of recent windows unchanged, hand the work to one lease holder only,
and on SQLite leave the write-ahead log truncated.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from logic_service.settings import LogicSettings
from logic_service.settings.storage import RetentionSettings, StorageSettings
from logic_service.storage.evaluation import version_stats
from logic_service.storage.log_aggregates import prediction_buckets, prediction_label_buckets
from logic_service.storage.prediction_log import (
    insert_ignoring_duplicates,
    insert_with_aggregates,
    predictions,
)
from logic_service.storage.retention import LEASE, Retention
from logic_service.storage.retention_process import run_in_child
from logic_service.storage.rollout_state import RolloutStore

NOW = datetime.now(UTC)


@pytest.fixture
def engine(both_engines: sa.Engine) -> sa.Engine:
    return both_engines


def _row(name: str, ts: datetime, label: float | None = None) -> dict:
    return {
        "request_id": name,
        "record_index": 0,
        "batch_size": 1,
        "ts": ts,
        "model": "ctr",
        "version": 1,
        "arm": "a",
        "strategy": None,
        "api_version": "v1",
        "input": '{"x": 1}',
        "output": '{"score": 0.7}',
        "score": 0.7,
        "latency_ms": 3.0,
        "status": 200,
        "error": None,
        "label": label,
        "reward": None,
        "feedback_at": None,
        "feedback_updates": 0,
    }


def _write(engine: sa.Engine, rows: list[dict]) -> None:
    with engine.begin() as connection:
        insert_with_aggregates(connection, insert_ignoring_duplicates(engine), rows)


def _count(engine: sa.Engine, table: sa.Table, *where: object) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar()


def _log(engine: sa.Engine) -> tuple[int, int]:
    """Rows 5 days old interleaved with rows from the last hour; old and recent counts."""
    rows = []
    for i in range(93):
        old = (i % 7 != 3 and i < 70) or (i % 2 == 0 and i < 40)
        age = timedelta(days=5, minutes=i) if old else timedelta(minutes=10 + i % 30)
        rows.append(_row(f"r{i}", NOW - age, label=float(i % 2)))
    _write(engine, rows[:60])
    _write(engine, rows[60:])
    old = sum(r["ts"] < NOW - timedelta(days=3) for r in rows)
    return old, len(rows) - old


def test_a_pass_deletes_only_what_is_past_retention_in_batches(engine: sa.Engine) -> None:
    old, recent = _log(engine)
    assert old > 40 and recent > 20
    before = version_stats(engine, "ctr", NOW - timedelta(hours=2), NOW)
    settings = RetentionSettings(
        predictions_days=3,
        aggregates_days=5 + 1 / 48,
        fine_aggregates_hours=24,
        batch_rows=7,
        pause_ms=0,
    )
    retention = Retention(engine, settings, clock=NOW.timestamp)
    report = retention.run_pass()
    assert report.completed
    assert report.predictions == old
    assert _count(engine, predictions) == recent
    assert _count(engine, predictions, predictions.c.ts < NOW - timedelta(days=3)) == 0
    # seven rows at most per delete: at least ceil(old / 7) prediction batches
    assert report.batches >= -(-old // 7)
    # 10-second buckets of the old rows are past 24 h; of their 1-minute ones (5 days and
    # 0..69 minutes old) those past 5 days and 30 minutes go, the younger stay
    cutoff_fine = (NOW - timedelta(hours=24)).timestamp()
    cutoff_coarse = (NOW - timedelta(days=5, minutes=30)).timestamp()
    for table in (prediction_buckets, prediction_label_buckets):
        fine, coarse = table.c.bucket_s == 10, table.c.bucket_s == 60
        assert _count(engine, table, fine, table.c.start < cutoff_fine) == 0
        assert _count(engine, table, coarse, table.c.start < cutoff_coarse - 60) == 0
        assert _count(engine, table, coarse, table.c.start < cutoff_fine) > 0
        assert _count(engine, table, fine, table.c.start >= cutoff_fine) > 0
    assert report.aggregates > 0
    # the recent window reads the same as before the pass
    assert version_stats(engine, "ctr", NOW - timedelta(hours=2), NOW) == before
    if engine.dialect.name == "sqlite":
        assert report.checkpointed
        wal = Path(f"{engine.url.database}-wal")
        assert not wal.exists() or os.path.getsize(wal) == 0
    # a second pass finds nothing (the same holder: its lease is still running)
    again = retention.run_pass()
    assert (again.predictions, again.aggregates, again.completed) == (0, 0, True)


def test_a_row_written_late_with_an_old_time_goes_once_the_rows_before_it_do(
    engine: sa.Engine,
) -> None:
    """The walk stops at the first batch with nothing old: ids, not times, order it."""
    old, recent = _log(engine)
    _write(engine, [_row("late", NOW - timedelta(days=4), label=1.0)])  # replayed: high id
    settings = RetentionSettings(batch_rows=7, pause_ms=0)
    assert Retention(engine, settings, clock=NOW.timestamp).run_pass().predictions == old
    assert _count(engine, predictions, predictions.c.request_id == "late") == 1
    later = (NOW + timedelta(days=3, hours=1)).timestamp  # the recent rows are old now
    report = Retention(engine, settings, clock=later).run_pass()  # the first lease expired
    assert report.predictions == recent + 1
    assert _count(engine, predictions) == 0


def test_only_the_lease_holder_prunes(engine: sa.Engine) -> None:
    old, recent = _log(engine)
    store = RolloutStore(engine)
    assert store.take_lease(LEASE, "another-replica", 60.0, NOW.timestamp())
    settings = RetentionSettings(batch_rows=5, pause_ms=0)
    report = Retention(engine, settings, store, clock=NOW.timestamp).run_pass()
    assert (report.completed, report.predictions) == (False, 0)
    assert _count(engine, predictions) == old + recent
    # once the other holder's lease has expired, this process takes over
    later = (NOW + timedelta(seconds=61)).timestamp
    report = Retention(engine, settings, store, clock=later).run_pass()
    assert report.completed and report.predictions == old


def test_retention_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="predictions_days"):
        LogicSettings(storage={"retention": {"predictions_days": 0}})
    with pytest.raises(ValueError, match="batch_rows"):
        LogicSettings(storage={"retention": {"batch_rows": -1}})
    defaults = LogicSettings().storage.retention
    assert (defaults.predictions_days, defaults.aggregates_days) == (3.0, 90.0)


def test_the_background_thread_prunes_at_a_lower_priority_and_stops(engine: sa.Engine) -> None:
    _, recent = _log(engine)
    settings = RetentionSettings(interval_s=0.05, pause_ms=0, nice=7)
    retention = Retention(engine, settings)
    seen_nice: list[int] = []
    real_pass = retention.run_pass

    def pass_noting_its_priority() -> object:
        seen_nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_pass()

    retention.run_pass = pass_noting_its_priority  # type: ignore[method-assign]
    retention.start()
    try:
        deadline = time.monotonic() + 20
        while _count(engine, predictions) != recent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        retention.stop()
    assert _count(engine, predictions) == recent
    assert seen_nice and set(seen_nice) == {os.getpriority(os.PRIO_PROCESS, 0) + 7}
    passes = len(seen_nice)
    time.sleep(0.3)
    assert len(seen_nice) == passes  # stopped: no pass after stop()


def _in_child(engine: sa.Engine, settings: RetentionSettings):
    storage = StorageSettings(
        database_url=engine.url.render_as_string(hide_password=False), retention=settings
    )
    return lambda owner, stopping: run_in_child(storage, owner, stopping)


def test_a_pass_in_a_child_process_prunes_at_a_lower_priority_under_the_workers_lease(
    engine: sa.Engine,
) -> None:
    """As the app runs passes by default: the worker holds the lease, a child deletes."""
    old, recent = _log(engine)
    settings = RetentionSettings(pause_ms=0, batch_rows=10, nice=7)
    store = RolloutStore(engine)
    assert store.take_lease(LEASE, "another replica", 60.0, time.time())
    blocked = Retention(engine, settings, store, runner=_in_child(engine, settings))
    report = blocked.run_pass_as_configured()
    assert (report.completed, report.predictions) == (False, 0)  # no child started
    retention = Retention(
        engine, settings, store, clock=lambda: time.time() + 120, runner=_in_child(engine, settings)
    )
    report = retention.run_pass_as_configured()
    assert report.completed and report.predictions == old and report.batches >= old // 10
    assert report.nice == os.getpriority(os.PRIO_PROCESS, 0) + 7
    assert report.cpu_policy == "idle"  # chrt --idle: any serving thread preempts it
    assert _count(engine, predictions) == recent


def test_a_child_pass_without_idle_cpu_runs_niced_only(engine: sa.Engine) -> None:
    old, _recent = _log(engine)
    settings = RetentionSettings(pause_ms=0, batch_rows=100, nice=5, idle_cpu=False)
    retention = Retention(engine, settings, runner=_in_child(engine, settings))
    report = retention.run_pass_as_configured()
    assert report.completed and report.predictions == old
    assert (report.cpu_policy, report.nice) == ("other", os.getpriority(os.PRIO_PROCESS, 0) + 5)


def test_a_child_pass_ends_when_the_worker_stops(engine: sa.Engine) -> None:
    old, recent = _log(engine)
    settings = RetentionSettings(pause_ms=2000, batch_rows=1, interval_s=0.05)  # ~2 s a row
    retention = Retention(engine, settings, runner=_in_child(engine, settings))
    retention.start()
    try:
        deadline = time.monotonic() + 30
        while _count(engine, predictions) == old + recent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        began = time.monotonic()
        retention.stop(timeout=30)
        took = time.monotonic() - began
    left = _count(engine, predictions)
    assert recent < left < old + recent  # it had begun, and did not run to the end
    time.sleep(2.5)
    assert _count(engine, predictions) == left  # the child is gone: nothing deleted after stop
    assert took < 30
