"""Retiring an API version is read from the prediction log, on SQLite and PostgreSQL.

Rows are written straight into ``predictions`` at chosen times, so what the
window must count is known here, not copied from the code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from logic_service.storage.database import open_database
from logic_service.storage.prediction_log import predictions
from logic_service.storage.retired_apis import (
    StillInUse,
    load_retired,
    restore,
    retire,
    traffic,
)

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
WINDOW_S = 3600.0


@pytest.fixture
def engine(both_engines: sa.Engine) -> sa.Engine:
    return both_engines


def _rows(engine: sa.Engine, *rows: tuple[str, str | None, float, int]) -> None:
    """(model, api_version, seconds before NOW, record_index) per row."""
    with engine.begin() as connection:
        connection.execute(
            sa.insert(predictions),
            [
                {
                    "request_id": f"r{i}",
                    "record_index": index,
                    "batch_size": 2,
                    "ts": NOW - timedelta(seconds=ago),
                    "model": model,
                    "version": 1,
                    "api_version": api,
                    "latency_ms": 1.0,
                    "status": 200,
                    "feedback_updates": 0,
                }
                for i, (model, api, ago, index) in enumerate(rows)
            ],
        )


def test_retire_is_refused_while_the_api_had_requests_in_the_window(engine: sa.Engine) -> None:
    _rows(
        engine,
        ("ctr", "v1", 3599, 0),  # inside the window
        ("ctr", "v1", 3599, 1),  # the same request's second record: not a second request
        ("ctr", "v1", 60, 0),  # inside, the newest
        ("ctr", "v1", 3601, 0),  # outside
        ("ctr", "v2", 10, 0),  # another API
        ("other", "v1", 10, 0),  # another model
    )
    with pytest.raises(StillInUse) as caught:
        retire(engine, "ctr", "v1", WINDOW_S, "moved to v2", now=NOW)
    assert caught.value.traffic.requests == 2
    assert str(caught.value) == (
        "API v1 of model ctr had 2 requests within the last 3600 s (api_retire_window_s; the "
        "last at 2026-12-03T11:59:00+00:00): it is retired only once nothing has called it "
        "for that long"
    )
    assert load_retired(engine) == {}  # nothing written


def test_rows_from_before_api_versions_count_as_v1(engine: sa.Engine) -> None:
    _rows(engine, ("ctr", None, 30, 0))
    assert traffic(engine, "ctr", "v1", NOW - timedelta(hours=1)).requests == 1
    assert traffic(engine, "ctr", "v2", NOW - timedelta(hours=1)).requests == 0
    with pytest.raises(StillInUse):
        retire(engine, "ctr", "v1", WINDOW_S, "x", now=NOW)


def test_retire_after_the_window_then_again_then_restore(engine: sa.Engine) -> None:
    _rows(engine, ("ctr", "v1", 3601, 0), ("ctr", "v2", 1, 0))
    retirement, new = retire(engine, "ctr", "v1", WINDOW_S, "moved to v2", now=NOW)
    assert new and retirement.retired_at == NOW and retirement.reason == "moved to v2"
    assert load_retired(engine)["ctr"]["v1"] == retirement
    again, new = retire(engine, "ctr", "v1", WINDOW_S, "twice", now=NOW + timedelta(hours=2))
    assert not new and again == retirement  # the first retirement stands
    assert restore(engine, "ctr", "v1") is True
    assert restore(engine, "ctr", "v1") is False
    assert load_retired(engine) == {}


def test_the_count_reads_the_model_api_time_index(tmp_path: Path) -> None:
    """On SQLite (PostgreSQL picks plans by table statistics, which an empty table lacks)."""
    engine = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    query = (
        "EXPLAIN QUERY PLAN SELECT count(*) FROM predictions WHERE model = 'ctr' "
        "AND api_version = 'v2' AND ts >= '2026-12-03' AND record_index = 0"
    )
    with engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(query))
    engine.dispose()
    assert "ix_predictions_model_api_ts" in plan, plan
