"""The same prediction log on a real PostgreSQL, by URL alone (the scale-out case).

A throwaway cluster (``initdb`` + ``pg_ctl``) on a Unix socket in a tmp
dir. PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` user. Skipped (marker ``postgres``) where no server binaries are
installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from logic_service.evaluation import version_stats
from logic_service.feedback_api import Feedback, _store
from logic_service.metrics import Metrics
from logic_service.prediction_log import PredictionRecorder, predictions
from logic_service.request_context import RequestContext
from logic_service.storage import open_database

pytestmark = pytest.mark.postgres


def _binaries() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(versions[-1]) if versions else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) installed")
    as_user: list[str] = []
    base = tempfile.mkdtemp(prefix="tierkit-pg-")
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no postgres user to run the server as")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(base, "data")

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, timeout=60, cwd=base)

    run(f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "tierkit", "--no-sync")
    options = f"-k {base} -c listen_addresses='' -c fsync=off -p 5432"
    # -l: the server must not inherit our pipes, or run() would wait for it to exit
    log = os.path.join(base, "server.log")
    run(f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "-t", "30", "start")
    try:
        yield f"postgresql+psycopg://tierkit@/postgres?host={base}&port=5432"
    finally:
        run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = open_database(postgres_url)
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
