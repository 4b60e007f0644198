"""The prediction log's recorder: batching, flushing, counted drops, and the app's use of it.

A real SQLite file in a tmp dir throughout; the app runs against a graph
address nobody listens on, so its predict answers are real 503s (recorded as
failed predictions), which is enough to see recording never holds up or
breaks an answer.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from support.ports import free_port

from logic_service.app import create_app
from logic_service.features import ctr
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.services import services_of
from logic_service.settings import LogicSettings
from logic_service.storage.database import open_database
from logic_service.storage.prediction_log import predictions
from logic_service.storage.writer.recorder import PredictionRecorder
from logic_service.storage.writer.spill_file import SpillFile


def _rows(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(predictions).order_by(predictions.c.request_id, predictions.c.record_index)
        ).all()


def _sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return value or 0.0


def _context(request_id: str, version: int = 3, arm: str | None = None) -> RequestContext:
    context = RequestContext(request_id)
    context.model, context.version, context.arm, context.strategy = "ctr", version, arm, "ab"
    return context


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = open_database(f"sqlite:///{tmp_path / 'sub' / 'log.db'}")
    yield engine
    engine.dispose()


def test_open_database_creates_the_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "var" / "tierkit.db"
    engine = open_database(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert "predictions" in sa.inspect(connection).get_table_names()
    engine.dispose()
    assert path.exists()
    open_database(f"sqlite:///{path}").dispose()  # a second worker opening it finds the tables


def test_records_wait_for_start_and_are_written_in_batches(engine: sa.Engine) -> None:
    metrics = Metrics()
    recorder = PredictionRecorder(engine, metrics, batch_size=4, flush_interval_ms=10_000)
    single = {"prediction": {"score": np.array([0.25], dtype=np.float32)}}
    batch = {"predictions": [{"score": 0.9}, {"score": 0.1}, {"score": 0.5}]}
    for i in range(6):
        assert recorder.record(_context(f"one-{i}", arm="a"), ctr.EXAMPLE_REQUEST, single, 200)
    records = [{"n": 1}, {"n": 2}, {"n": 3}]
    assert recorder.record(_context("many", arm="b"), {"records": records}, batch, 200)
    assert recorder.record(_context("bad"), {"x": 1}, None, 422, "invalid_input")
    assert _rows(engine) == []  # nothing is written before the writer starts
    recorder.start()
    # 8 queued >= batch_size: the writer is woken at once, not after the 10 s interval
    assert recorder.flush(timeout=10)
    rows = _rows(engine)
    assert len(rows) == 6 + 3 + 1
    assert _sample(metrics, "tierkit_prediction_log_written_total") == 10
    by_id = {(r.request_id, r.record_index): r for r in rows}
    many = [by_id[("many", i)] for i in range(3)]
    assert [r.batch_size for r in many] == [3, 3, 3]
    assert [r.score for r in many] == [0.9, 0.1, 0.5]
    assert [r.input for r in many] == ['{"n":1}', '{"n":2}', '{"n":3}']
    assert {r.arm for r in many} == {"b"} and {r.strategy for r in many} == {"ab"}
    first = by_id[("one-0", 0)]
    assert first.batch_size == 1 and first.version == 3 and first.status == 200
    assert first.score == pytest.approx(0.25)
    assert first.output == '{"score":[0.25]}'
    bad = by_id[("bad", 0)]
    assert (bad.status, bad.error, bad.output, bad.score) == (422, "invalid_input", None, None)
    recorder.stop()


def test_stop_writes_what_is_still_queued(engine: sa.Engine) -> None:
    recorder = PredictionRecorder(engine, batch_size=1000, flush_interval_ms=60_000)
    recorder.start()
    for i in range(25):
        recorder.record(_context(f"late-{i}"), {"i": i}, {"prediction": {"score": 0.5}}, 200)
    recorder.stop(timeout=20)
    assert len(_rows(engine)) == 25


def test_a_full_queue_counts_every_dropped_record_and_never_raises(engine: sa.Engine) -> None:
    metrics = Metrics()
    recorder = PredictionRecorder(engine, metrics, queue_size=3, batch_size=2)
    answer = {"predictions": [{"score": 0.1}, {"score": 0.2}]}
    accepted = [
        recorder.record(_context(f"q-{i}"), {"records": [{}, {}]}, answer, 200) for i in range(10)
    ]
    assert accepted == [True] * 3 + [False] * 7
    # rows, not requests: each dropped request held two records
    assert _sample(metrics, "tierkit_prediction_log_dropped_total", {"reason": "queue_full"}) == 14
    recorder.start()
    assert recorder.flush(timeout=10)
    assert len(_rows(engine)) == 6
    recorder.stop()


def test_a_reused_request_id_keeps_the_first_row_and_counts_the_repeat(engine: sa.Engine) -> None:
    metrics = Metrics()
    recorder = PredictionRecorder(engine, metrics)
    recorder.start()
    recorder.record(_context("same"), {"v": 1}, {"prediction": {"score": 0.1}}, 200)
    recorder.flush()
    recorder.record(_context("same"), {"v": 2}, {"prediction": {"score": 0.9}}, 200)
    recorder.flush()
    recorder.stop()
    rows = _rows(engine)
    assert [r.input for r in rows] == ['{"v":1}']
    assert _sample(metrics, "tierkit_prediction_log_dropped_total", {"reason": "duplicate"}) == 1


def _settings(tmp_path: Path, **storage) -> LogicSettings:
    port = free_port()
    return LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{port}", "deadline_ms": 300},
        model_repository=tmp_path / "models",
        storage={"database_url": f"sqlite:///{tmp_path / 'app.db'}"} | storage,
        status_refresh_s=0.2,
    )


def test_answers_are_unaffected_while_the_database_is_locked_and_the_queue_full(
    tmp_path: Path,
) -> None:
    settings = _settings(
        tmp_path,
        queue_size=2,
        batch_size=1,
        flush_interval_ms=20,
        busy_timeout_ms=50,
        write_retry_s=0.1,
        spill={"probe_interval_s": 0.05},
    )
    app = create_app(settings, configure_logs=False)
    sent = 12
    with TestClient(app) as client:
        # Another writer holds SQLite's write lock: inserts meet "database is locked".
        blocker = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        statuses = [
            client.post("/v1/models/ctr/predict", json=ctr.EXAMPLE_REQUEST).status_code
            for _ in range(sent)
        ]
        recorder = services_of(app).prediction_log
        assert recorder.flush(timeout=20)
        assert recorder.status()["spill_bytes"] > 0  # the file holds what the lock kept out
        blocker.execute("ROLLBACK")
        blocker.close()
        assert statuses == [503] * sent  # the graph tier is down: real answers, all given
        assert recorder.settle(timeout=30)
        metrics = services_of(app).metrics
        spilled = _sample(metrics, "tierkit_prediction_log_spilled_total")
        rows = _rows(services_of(app).database)
    assert spilled > 0
    assert _sample(metrics, "tierkit_prediction_log_replayed_total") == spilled
    assert _dropped(metrics) == 0
    assert len(rows) == sent  # every record written, none lost
    assert {(r.status, r.error, r.model) for r in rows} == {(503, "unavailable", "ctr")}
    # the default spill folder sits beside the SQLite file, and is empty again
    assert list((tmp_path / "spill" / "prediction-log").glob("*.jsonl")) == []


def _dropped(metrics: Metrics) -> float:
    reasons = ("queue_full", "write_failed", "spill_full", "invalid", "rejected", "duplicate")
    return sum(
        _sample(metrics, "tierkit_prediction_log_dropped_total", {"reason": r}) for r in reasons
    )


def _spilling_recorder(
    engine: sa.Engine, spill_path: Path, metrics: Metrics, max_bytes: int = 1 << 20
) -> PredictionRecorder:
    return PredictionRecorder(
        engine,
        metrics,
        queue_size=5,
        batch_size=10,
        flush_interval_ms=10,
        write_retry_s=0.1,
        spill=SpillFile(spill_path, max_bytes, segment_bytes=4096),
        probe_interval_s=0.05,
    )


def _locked_engine(tmp_path: Path) -> tuple[sa.Engine, sqlite3.Connection]:
    """A database another connection holds the write lock of (released by the caller)."""
    engine = open_database(f"sqlite:///{tmp_path / 'locked.db'}", busy_timeout_ms=20)
    blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return engine, blocker


def test_a_locked_database_spills_says_so_and_loses_nothing(tmp_path: Path) -> None:
    engine, blocker = _locked_engine(tmp_path)
    metrics = Metrics()
    recorder = _spilling_recorder(engine, tmp_path / "spill", metrics)
    recorder.start()
    answer = {"predictions": [{"score": 0.1}, {"score": 0.2}]}
    accepted = [
        recorder.record(_context(f"l-{i}"), {"records": [{}, {}]}, answer, 200) for i in range(300)
    ]
    assert all(accepted)  # queued or spilled: nothing refused
    assert recorder.flush(timeout=20)
    status = recorder.status()
    assert status["state"] == "database_unavailable"
    assert status["database_down_since"] is not None
    assert status["spilled_rows"] == 600 and status["spill_bytes"] > 0
    assert metrics.registry.get_sample_value("tierkit_prediction_log_database_up") == 0
    assert _rows(engine) == []
    blocker.execute("ROLLBACK")
    blocker.close()
    assert recorder.settle(timeout=30)
    assert recorder.status()["state"] == "writing"
    assert metrics.registry.get_sample_value("tierkit_prediction_log_database_up") == 1
    assert len(_rows(engine)) == 600
    assert _sample(metrics, "tierkit_prediction_log_replayed_total") == 600
    assert _dropped(metrics) == 0
    recorder.stop()
    engine.dispose()


def test_a_full_spill_folder_drops_loudly_and_counts_every_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine, blocker = _locked_engine(tmp_path)
    metrics = Metrics()
    recorder = _spilling_recorder(engine, tmp_path / "spill", metrics, max_bytes=4000)
    recorder.start()
    sent = 100
    for i in range(sent):
        recorder.record(_context(f"cap-{i}"), {"i": i}, {"prediction": {"score": 0.5}}, 200)
    assert recorder.flush(timeout=20)
    dropped = _sample(metrics, "tierkit_prediction_log_dropped_total", {"reason": "spill_full"})
    assert dropped > 0
    assert recorder.status()["dropped_at_cap_rows"] == dropped
    assert recorder.status()["state"] == "database_unavailable"
    assert any("is full" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert recorder.settle(timeout=30)
    assert len(_rows(engine)) + dropped == sent  # every row either written or counted
    recorder.stop()
    engine.dispose()


def test_rows_spilled_before_a_restart_are_replayed_by_the_next_start(tmp_path: Path) -> None:
    engine, blocker = _locked_engine(tmp_path)
    first = _spilling_recorder(engine, tmp_path / "spill", Metrics())
    first.start()
    for i in range(40):
        first.record(_context(f"re-{i}"), {"i": i}, {"prediction": {"score": 0.5}}, 200)
    first.stop(timeout=20)  # the replica shuts down while the database is still locked
    assert list((tmp_path / "spill").glob("*.jsonl"))
    blocker.execute("ROLLBACK")
    blocker.close()
    metrics = Metrics()
    second = _spilling_recorder(engine, tmp_path / "spill", metrics)
    second.start()
    assert second.settle(timeout=30)
    rows = _rows(engine)
    assert sorted(r.request_id for r in rows) == sorted(f"re-{i}" for i in range(40))
    assert rows[0].ts.year >= 2026 and rows[0].score == 0.5  # times and numbers came back
    assert _sample(metrics, "tierkit_prediction_log_replayed_total") == 40
    second.stop()
    engine.dispose()


def test_a_row_the_database_refuses_as_data_is_dropped_alone(engine: sa.Engine) -> None:
    metrics = Metrics()
    recorder = PredictionRecorder(engine, metrics, batch_size=10, flush_interval_ms=10)
    for i in range(5):
        recorder.record(_context(f"ok-{i}"), {"i": i}, {"prediction": {"score": 0.5}}, 200)
    recorder.record(_context("broken"), {"i": 9}, {"prediction": {"score": 0.5}}, 200)
    # a NULL in the NOT NULL latency column: the database refuses that row, not the batch
    recorder._queue.queue[-1] = dataclasses.replace(recorder._queue.queue[-1], latency_ms=None)
    recorder.start()
    assert recorder.flush(timeout=10)
    recorder.stop()
    assert sorted(r.request_id for r in _rows(engine)) == [f"ok-{i}" for i in range(5)]
    assert _sample(metrics, "tierkit_prediction_log_dropped_total", {"reason": "rejected"}) == 1


def test_unknown_models_are_not_logged_and_recording_can_be_turned_off(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, record_predictions=False), configure_logs=False)
    with TestClient(app) as client:
        assert client.post("/v1/models/nope/predict", json={}).status_code == 404
        assert client.post("/v1/models/ctr/predict", json=ctr.EXAMPLE_REQUEST).status_code == 503
        services_of(app).prediction_log.flush()
        assert _rows(services_of(app).database) == []
