"""The prediction log writer through a PostgreSQL outage: rows spilled, bytes, replay, drops.

    python -m bench.prediction_log_outage [RECORDS]   (default 50,000)

Starts the test suite's throwaway PostgreSQL (tests/support/postgres.py: Debian's
initdb/pg_ctl), stops it (``pg_ctl stop -m immediate``), records RECORDS demo
answers, starts it again and waits until the spill folder is replayed; prints what
docs/database.md quotes. The spill folder is a fresh temporary one.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # support.postgres

import sqlalchemy as sa
from support.postgres import throwaway_postgres

from logic_service.features import ctr
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.storage.database import open_database
from logic_service.storage.writer.recorder import PredictionRecorder
from logic_service.storage.writer.spill_file import SpillFile


def main(records: int) -> None:
    spill_dir = Path(tempfile.mkdtemp(prefix="tierkit-spill-"))
    with throwaway_postgres() as server:
        engine = open_database(server.url(server.create_database()))
        metrics = Metrics()
        recorder = PredictionRecorder(
            engine,
            metrics,
            write_retry_s=1.0,
            spill=SpillFile(spill_dir, 1 << 30),
            probe_interval_s=1.0,
        )
        recorder.start()
        answer = {"prediction": {"score": [0.4242]}}
        server.stop()
        started = time.perf_counter()
        each: list[float] = []
        for i in range(records):
            context = RequestContext(f"out-{i}")
            context.model, context.version, context.arm = "ctr", 1795321077, "stable"
            before = time.perf_counter()
            recorder.record(context, ctr.EXAMPLE_REQUEST, answer, 200)
            each.append(time.perf_counter() - before)
        recorder.flush(60)
        sent_s = time.perf_counter() - started
        status = recorder.status()
        each.sort()
        p50, p99 = each[records // 2] * 1e6, each[int(records * 0.99)] * 1e6
        print(
            f"{records} records sent in {sent_s:.1f} s while PostgreSQL was stopped; "
            f"record() p50 {p50:.1f} us, p99 {p99:.1f} us, max {each[-1] * 1e3:.1f} ms"
        )
        per_row = status["spill_bytes"] / max(1, status["spilled_rows"])
        print(
            f"state={status['state']} spilled_rows={status['spilled_rows']} "
            f"spill_bytes={status['spill_bytes']} ({per_row:.0f} B/row)"
        )
        server.start()
        started = time.perf_counter()
        assert recorder.settle(600), "not replayed within 10 minutes"
        print(f"replayed in {time.perf_counter() - started:.1f} s after the server came back")
        with engine.connect() as connection:
            rows = connection.execute(sa.text("select count(*) from predictions")).scalar_one()
        dropped = sum(
            sample.value
            for family in metrics.prediction_log_dropped.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
        replayed = recorder.status()["replayed_rows"]
        print(f"rows in table {rows}, dropped {dropped:.0f}, replayed {replayed}")
        recorder.stop()
        engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
