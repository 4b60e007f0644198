"""The prediction-log benchmark's parts that are not timing: the log it builds and its report.

The bench itself (``python -m bench prediction-log``, minutes long) is not
part of the suite; here a small log is built on a real SQLite file by the
same code and read back through the evaluation the endpoint uses, and the
report is rendered from figures made up here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.prediction_log_data import VERSIONS, build_log, table_bytes
from bench.prediction_log_report import DOCS, render
from logic_service.storage.database import open_database
from logic_service.storage.evaluation import version_stats
from logic_service.storage.payloads import PayloadPolicy
from logic_service.storage.prediction_log import predictions


def test_the_built_log_reads_back_through_the_aggregates(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'log.db'}")
    end = time.time()
    built = build_log(engine, 3_000, end, PayloadPolicy("none"), say=lambda _: None)
    stats = version_stats(
        engine, "ctr", datetime.fromtimestamp(end - 3600, UTC), datetime.fromtimestamp(end, UTC)
    )
    assert [s.version for s in stats] == list(VERSIONS)
    assert sum(s.requests for s in stats) == 3_000
    assert sum(s.feedback for s in stats) == built.labelled > 0
    with engine.connect() as connection:
        failed = connection.execute(
            sa.select(sa.func.count()).where(predictions.c.status >= 500)
        ).scalar()
    assert sum(s.errors for s in stats) == failed
    assert table_bytes(engine, ("predictions",)) > 3_000 * 50
    engine.dispose()


def _read(p99: float) -> dict:
    return {"n": 200, "p50_ms": p99 / 2, "p99_ms": p99, "max_ms": p99 * 1.5}


def test_report_states_the_goals_per_database() -> None:
    result = {
        "backend": "sqlite",
        "build": {"rows": 1000, "labelled": 10, "seconds": 2.0, "aggregate_bytes": 4096},
        "reads": {
            "dashboard summary": _read(40.0),
            "evaluation 1h": _read(150.0),
            "guardrail stats 1h": _read(20.0),
            "evaluation answer": [
                {"version": 1, "arm": "a", "requests": 900, "feedback": 9, "auc": 0.8,
                 "auc_max_error": 0.01},
            ],
        },
        "retention": {
            "steady": _read(10.0), "during": _read(10.5), "pass_s": 3.0, "deleted": 500,
            "batches": 3,
        },
        "disk_per_row": {"full": 500.0, "sampled": 220.0, "none": 210.0},
    }  # fmt: skip
    markdown = render(
        {"measured_at": "2026-12-05T22:00:00+00:00", "command": "python -m bench prediction-log",
         "runtime_s": 600, "rows": 1000, "results": [result]}
    )  # fmt: skip
    assert "| sqlite | dashboard summary | 200 | 20.0 | 40.0 | 60.0 | yes |" in markdown
    assert "| sqlite | evaluation 1h | 200 | 75.0 | 150.0 | 225.0 | **no** |" in markdown
    assert "+5.0 % | yes |" in markdown
    assert "500 B/row = 1.80 GB/h" in markdown
    placed = DOCS.place("# P\n\n<!-- bench-prediction-log:begin -->\nstale figures\n"
                        "<!-- bench-prediction-log:end -->\n", markdown)  # fmt: skip
    assert "stale figures" not in placed and placed.startswith("# P\n")
