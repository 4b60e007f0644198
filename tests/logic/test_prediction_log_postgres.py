"""The same prediction log on a real PostgreSQL, by URL alone (the scale-out case).

The server is the session's throwaway PostgreSQL (``tests/support/postgres.py``,
fixtures in ``conftest.py``); this module gets a database of its own, reached
with a plain ``postgresql://user:password@/db?host=...`` URL as users write it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score
from support.postgres import PostgresServer

from logic_service.evaluation import version_stats
from logic_service.feedback_api import Feedback, _store
from logic_service.metrics import Metrics
from logic_service.prediction_log import PredictionRecorder, predictions
from logic_service.request_context import RequestContext
from logic_service.storage import open_database

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
    assert stats.auc == pytest.approx(roc_auc_score(labels, stored))
    with engine.connect() as connection:
        ts = connection.execute(sa.select(predictions.c.ts).limit(1)).scalar_one()
    assert ts.utcoffset() == timedelta(0)
