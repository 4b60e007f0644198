"""``storage.payloads``: how much of each request the log keeps, through the real writer.

Whatever the mode, every row stays (feedback joins on it) and the aggregates
count every row; only ``input`` and ``output`` are emptied. ``sampled`` keeps
whole requests (every record of a batch alike), by a hash of the request id
that every replica computes the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from logic_service.observability.request_context import RequestContext
from logic_service.settings import LogicSettings
from logic_service.storage.evaluation import version_stats
from logic_service.storage.payloads import PayloadPolicy
from logic_service.storage.prediction_log import predictions
from logic_service.storage.writer.recorder import PredictionRecorder

REQUESTS = 400


@pytest.fixture
def engine(both_engines: sa.Engine) -> sa.Engine:
    return both_engines


def _record(engine: sa.Engine, policy: PayloadPolicy) -> list:
    recorder = PredictionRecorder(engine, batch_size=64, payloads=policy)
    recorder.start()
    for i in range(REQUESTS):
        context = RequestContext(f"{policy.mode}-{i}")
        context.model, context.version = "ctr", 1
        if i % 4 == 0:  # a batch of two records
            body = {"records": [{"userId": i}, {"userId": -i}]}
            recorder.record(context, body, {"predictions": [{"score": 0.1}, {"score": 0.9}]}, 200)
        else:
            recorder.record(context, {"userId": i}, {"prediction": {"score": 0.4}}, 200)
    assert recorder.flush(timeout=30)
    recorder.stop()
    with engine.connect() as connection:
        return connection.execute(
            sa.select(
                predictions.c.request_id, predictions.c.input, predictions.c.output,
                predictions.c.score,
            ).order_by(predictions.c.id)
        ).all()  # fmt: skip


@pytest.mark.parametrize("mode", ["full", "sampled", "none"])
def test_payload_modes_keep_every_row_and_count_it(engine: sa.Engine, mode: str) -> None:
    policy = PayloadPolicy(mode, sample_rate=0.25)
    rows = _record(engine, policy)
    records = REQUESTS + REQUESTS // 4
    assert len(rows) == records
    assert all(row.score is not None for row in rows)  # scores are kept in every mode
    kept = {row.request_id for row in rows if row.input is not None}
    emptied = {row.request_id for row in rows if row.input is None}
    assert all((row.input is None) == (row.output is None) for row in rows)
    if mode == "full":
        assert not emptied
    elif mode == "none":
        assert not kept
    else:
        assert not kept & emptied  # a batch's records are kept or emptied together
        assert 0.15 < len(kept) / REQUESTS < 0.35
        assert kept == {r for r in kept | emptied if policy.keeps(r)}  # replicas agree
    (stats,) = version_stats(engine, "ctr", datetime.now(UTC) - timedelta(minutes=5))
    assert (stats.requests, stats.records) == (REQUESTS, records)


def test_payload_settings_are_checked() -> None:
    assert LogicSettings().storage.payloads == "full"
    with pytest.raises(ValueError, match="payloads"):
        LogicSettings(storage={"payloads": "partial"})
    with pytest.raises(ValueError, match="payload_sample_rate"):
        LogicSettings(storage={"payloads": "sampled", "payload_sample_rate": 1.5})
