"""After an upgrade to revision 0004: how long summing a log written without aggregates takes.

A database is migrated to revision 0003 (the release before the aggregates)
and given ``--rows`` predictions over one hour without aggregates, as that
release logged them (``prediction_log_data.build_log``). It is then upgraded
to head, as a replica does at start (timed: the migration only records the
highest id), and the back-fill runs to its end batch by batch, unpaced
(``aggregate_backfill.backfill_batch``, ``storage.retention.batch_rows`` a
batch). Reported: rows summed per second of work, each batch's time (what it
holds the write lock for, the figure that matters to the log writer beside
it), the time the first retention pass takes at the default ``busy_share``
(work / share), and a check that the 1-minute aggregates count every row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import command

from bench.prediction_log import database
from bench.prediction_log_data import build_log
from logic_service.settings.storage import RetentionSettings
from logic_service.storage.aggregate_backfill import backfill_batch
from logic_service.storage.database import create_engine
from logic_service.storage.log_aggregates import prediction_buckets
from logic_service.storage.migrations import runner
from logic_service.storage.payloads import PayloadPolicy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = RetentionSettings()
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows logged before 0004")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql")
    parser.add_argument("--batch-rows", type=int, default=defaults.batch_rows)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")


def _say(text: str) -> None:
    print(text, flush=True)


def run_backend(kind: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    with database(kind, workdir) as url:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                command.upgrade(runner.alembic_config(connection), "0003")
                connection.commit()
            _say(f"{kind}: {args.rows:,} rows without aggregates (revision 0003)")
            build_log(engine, args.rows, time.time(), PayloadPolicy("full", 0.0), say=_say,
                      aggregates=False)  # fmt: skip
            if kind == "postgresql":  # an old log has been vacuumed: no hint bits left to set
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("VACUUM (ANALYZE) predictions")
            began = time.perf_counter()
            runner.upgrade(engine)
            migration_s = time.perf_counter() - began
            _say(f"{kind}: upgraded to head in {migration_s:.2f} s; back-filling")
            batches: list[float] = []
            summed = 0
            began = time.perf_counter()
            while True:
                start = time.perf_counter()
                step = backfill_batch(engine, args.batch_rows)
                if step is None:
                    break
                batches.append(time.perf_counter() - start)
                summed += step.rows
            work_s = time.perf_counter() - began
            with engine.connect() as connection:
                counted = connection.execute(
                    sa.select(sa.func.sum(prediction_buckets.c.records)).where(
                        prediction_buckets.c.bucket_s == 60
                    )
                ).scalar()
        finally:
            engine.dispose()
    share = RetentionSettings().busy_share
    ms = np.array(batches) * 1000.0
    return {
        "backend": kind,
        "rows": summed,
        "counted": int(counted or 0),
        "migration_s": migration_s,
        "work_s": work_s,
        "rows_per_s": summed / work_s,
        "batch_ms": {q: float(np.percentile(ms, q)) for q in (50, 99)} | {"max": float(ms.max())},
        "paced_pass_s": work_s / share,
        "busy_share": share,
    }


def render(results: list[dict[str, Any]], batch_rows: int) -> str:
    lines = [
        f"| database | rows | migration | back-fill work | rows/s | batch of {batch_rows:,}: "
        "p50 / p99 / max | first pass at busy_share |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        b = r["batch_ms"]
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {r['migration_s']:.2f} s | {r['work_s']:.1f} s "
            f"| {r['rows_per_s']:,.0f} | {b[50]:.0f} / {b[99]:.0f} / {b['max']:.0f} ms "
            f"| {r['paced_pass_s'] / 60:.0f} min ({r['busy_share']}) |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="tierkit-bench-backfill-") as tmp:
        root = args.workdir or Path(tmp)
        for kind in [k.strip() for k in args.backends.split(",") if k.strip()]:
            result = run_backend(kind, root / kind, args)
            if result["counted"] != result["rows"]:
                _say(f"{kind}: the aggregates count {result['counted']:,} of {result['rows']:,}")
                return 1
            results.append(result)
    print(render(results, args.batch_rows))
    return 0
