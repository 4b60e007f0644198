"""The prediction log's recorder: batching, flushing, counted drops, and the app's use of it.

A real SQLite file in a tmp dir throughout; the app runs against a graph
address nobody listens on, so its predict answers are real 503s (recorded as
failed predictions), which is enough to see recording never holds up or
breaks an answer.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from logic_service.app import create_app
from logic_service.features import ctr
from logic_service.metrics import Metrics
from logic_service.prediction_log import PredictionRecorder, predictions, score_of
from logic_service.request_context import RequestContext
from logic_service.settings import LogicSettings
from logic_service.storage import open_database


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


@pytest.mark.parametrize(
    ("output", "score"),
    [
        ({"score": 0.3}, 0.3),
        ({"logits": [1.5]}, 1.5),  # the only output
        ({"probability": 0.7, "class": 1}, 0.7),
        ({"scores": [0.2, 0.8], "class": 1}, None),  # not one number
        ({"a": 0.1, "b": 0.2}, None),  # no score named
        ({"score": "high"}, None),
        ({"score": True}, None),
    ],
)
def test_which_output_is_the_score(output: dict, score: float | None) -> None:
    assert score_of(output) == score


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(tmp_path: Path, **storage) -> LogicSettings:
    port = _dead_port()
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
        tmp_path, queue_size=2, batch_size=1, flush_interval_ms=20, busy_timeout_ms=50
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
        blocker.execute("ROLLBACK")
        blocker.close()
        assert statuses == [503] * sent  # the graph tier is down: real answers, all given
        assert app.state.prediction_log.flush(timeout=20)
        metrics = app.state.metrics
        dropped = _sample(metrics, "tierkit_prediction_log_dropped_total", {"reason": "queue_full"})
        rows = _rows(app.state.database)
    assert dropped > 0
    assert len(rows) + dropped == sent  # every record either written or counted
    assert {(r.status, r.error, r.model) for r in rows} == {(503, "unavailable", "ctr")}


def test_unknown_models_are_not_logged_and_recording_can_be_turned_off(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, record_predictions=False), configure_logs=False)
    with TestClient(app) as client:
        assert client.post("/v1/models/nope/predict", json={}).status_code == 404
        assert client.post("/v1/models/ctr/predict", json=ctr.EXAMPLE_REQUEST).status_code == 503
        app.state.prediction_log.flush()
        assert _rows(app.state.database) == []
