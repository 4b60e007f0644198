"""The same prediction log on a real PostgreSQL, by URL alone (the scale-out case).

The server is the session's throwaway PostgreSQL (``tests/support/postgres.py``,
fixtures in ``conftest.py``); this module gets a database of its own, reached
with a plain ``postgresql://user:password@/db?host=...`` URL as users write it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score
from support.postgres import PostgresServer, PostgresUnavailable, throwaway_postgres

from logic_service.api.feedback import Feedback, _store
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.storage.database import open_database
from logic_service.storage.evaluation import version_stats
from logic_service.storage.prediction_log import predictions
from logic_service.storage.writer.recorder import PredictionRecorder
from logic_service.storage.writer.spill_file import SpillFile

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def engine(postgres_server: PostgresServer) -> Iterator[sa.Engine]:
    engine = open_database(postgres_server.url(postgres_server.create_database()))
    yield engine
    engine.dispose()


def test_recorder_feedback_and_evaluation_work_unchanged(engine: sa.Engine) -> None:
    assert engine.dialect.name == "postgresql"
    metrics = Metrics()
    recorder = PredictionRecorder(engine, metrics, batch_size=16)
    recorder.start()
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(60), 3)
    labels = (rng.random(60) < scores).astype(int)
    for i, score in enumerate(scores):
        context = RequestContext(f"pg-{i}")
        context.model, context.version, context.arm = "ctr", 5, "a"
        recorder.record(context, {"i": i}, {"prediction": {"score": np.float32(score)}}, 200)
    batch = {"predictions": [{"score": 0.5}, {"score": 0.6}]}
    context = RequestContext("pg-batch")
    context.model, context.version = "ctr", 5
    recorder.record(context, {"records": [{}, {}]}, batch, 200)
    recorder.record(context, {"records": [{}, {}]}, batch, 200)  # a reused id: kept once
    assert recorder.flush(timeout=20)
    recorder.stop()
    written = metrics.registry.get_sample_value("tierkit_prediction_log_written_total")
    duplicate = metrics.registry.get_sample_value(
        "tierkit_prediction_log_dropped_total", {"reason": "duplicate"}
    )
    assert (written, duplicate) == (62, 2)

    for i, label in enumerate(labels):
        _store(engine, Feedback(request_id=f"pg-{i}", label=float(1 - label)), 0)
        row = _store(engine, Feedback(request_id=f"pg-{i}", label=float(label)), 0)
        assert (row.label, row.feedback_updates) == (label, 2)

    (stats,) = version_stats(engine, "ctr", datetime.now(UTC) - timedelta(minutes=5))
    assert (stats.version, stats.requests, stats.records, stats.feedback) == (5, 61, 62, 60)
    stored = np.array(scores, dtype=np.float32).astype(float)
    assert abs(stats.auc - roc_auc_score(labels, stored)) <= stats.auc_max_error + 1e-12
    with engine.connect() as connection:
        ts = connection.execute(sa.select(predictions.c.ts).limit(1)).scalar_one()
    assert ts.utcoffset() == timedelta(0)


def test_the_database_going_away_and_coming_back_loses_no_record(tmp_path: Path) -> None:
    """Its own server (the session's is shared): stopped mid-traffic, started again."""
    try:
        server_context = throwaway_postgres()
        server = server_context.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        engine = open_database(server.url(server.create_database()))
        metrics = Metrics()
        recorder = PredictionRecorder(
            engine,
            metrics,
            queue_size=20,
            batch_size=25,
            flush_interval_ms=10,
            write_retry_s=0.2,
            spill=SpillFile(tmp_path / "spill", 1 << 24, segment_bytes=16_384),
            probe_interval_s=0.1,
        )
        recorder.start()
        answer = {"predictions": [{"score": 0.25}, {"score": 0.75}]}

        def send(prefix: str, count: int) -> None:
            for i in range(count):
                context = RequestContext(f"{prefix}-{i}")
                context.model, context.version, context.arm = "ctr", 7, "b"
                assert recorder.record(context, {"records": [{"i": i}, {}]}, answer, 200)

        send("before", 100)
        assert recorder.settle(timeout=30)
        server.stop()
        send("during", 500)  # the queue holds 20: the rest spill on the request path
        assert recorder.flush(timeout=30)
        status = recorder.status()
        assert status["state"] == "database_unavailable"
        assert status["spilled_rows"] >= 900 and status["spill_bytes"] > 0
        server.start()
        send("after", 100)
        assert recorder.settle(timeout=60)
        assert recorder.status()["state"] == "writing"
        recorder.stop()
        with engine.connect() as connection:
            ids = connection.execute(
                sa.select(predictions.c.request_id, predictions.c.record_index)
            ).all()
        assert len(ids) == len(set(ids)) == 2 * (100 + 500 + 100)  # 0 lost, 0 twice
        dropped = metrics.registry.get_sample_value(
            "tierkit_prediction_log_dropped_total", {"reason": "spill_full"}
        )
        assert dropped is None  # no drop of any reason was ever counted
        assert metrics.registry.get_sample_value(
            "tierkit_prediction_log_replayed_total"
        ) == metrics.registry.get_sample_value("tierkit_prediction_log_spilled_total")
        assert list((tmp_path / "spill").glob("*.jsonl")) == []
        engine.dispose()
    finally:
        server_context.__exit__(None, None, None)
