"""A SQLite prediction log of ROWS rows in one hour, for measuring ``dataset export``.

    python -m bench.dataset_fill ROWS FOLDER

Writes FOLDER/log.db (the demo model's records, one version with feature processing
in FOLDER/models/ctr/1795321077, 1 % labelled, 2026-12-05 10:00-11:00 UTC); then
measure with docs/dataset.md's command. The version's transformer is fitted on
synthetic records by the test suite's helpers (tests/support/ctr_artifacts.py).
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # support.ctr_artifacts

import sqlalchemy as sa
from support.ctr_artifacts import fitted_transformer, synthetic_records, write_assets

from logic_service.storage.database import open_database
from logic_service.storage.prediction_log import predictions

VERSION = 1795321077
START = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def _row(i: int, rows: int, record: dict, rng: random.Random) -> dict:
    labelled = rng.random() < 0.01
    return {
        "request_id": f"r{i}",
        "record_index": 0,
        "batch_size": 1,
        "ts": START + timedelta(microseconds=3_600_000_000 * i // rows),
        "model": "ctr",
        "version": VERSION,
        "arm": "stable",
        "strategy": "stable",
        "api_version": "v1",
        "input": json.dumps(record),
        "output": '{"score":[0.42]}',
        "score": 0.42,
        "latency_ms": 3.2,
        "status": 200,
        "error": None,
        "label": float(rng.random() < 0.4) if labelled else None,
        "reward": None,
        "feedback_at": START + timedelta(hours=1) if labelled else None,
        "feedback_updates": int(labelled),
    }


def main(rows: int, root: Path) -> None:
    folder = root / "models" / "ctr" / str(VERSION)
    if not folder.exists():
        folder.mkdir(parents=True)
        write_assets(folder, "ctr", VERSION, fitted_transformer(seed=1))
    engine = open_database(f"sqlite:///{root / 'log.db'}")
    records = synthetic_records(1000, seed=3)
    rng = random.Random(1)
    batch: list[dict] = []
    for i in range(rows):
        batch.append(_row(i, rows, records[i % 1000], rng))
        if len(batch) == 20_000 or i == rows - 1:
            with engine.begin() as connection:
                connection.execute(sa.insert(predictions), batch)
            batch = []
    engine.dispose()
    size_mb = (root / "log.db").stat().st_size // 1_000_000
    print(f"{rows} rows in {root / 'log.db'} ({size_mb} MB)")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
