"""A database written by release 0.1.0 upgrades in place, every row kept.

The old database is built from the DDL release 0.1.0 really emitted
(``tests/support/data/release-0.1.0-schema.*.sql``, captured before migrations existed),
filled the way 0.1.0's code wrote (predictions with feedback, a rollout, its
events, a lease), then opened with this release: it must be verified,
stamped at the baseline, upgraded to head, and read back identical, and the
new code must go on writing into it (ids continue, feedback lands).
A database that only looks like 0.1.0's is refused, naming the differences,
and left untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from support.ports import free_port
from support.postgres import PostgresServer
from support.release_0_1_0 import OLD_TABLES, build_release_0_1_0

from logic_service.api.feedback import Feedback, _store
from logic_service.app import create_app
from logic_service.observability.metrics import Metrics
from logic_service.observability.request_context import RequestContext
from logic_service.services import services_of
from logic_service.settings import LogicSettings
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.aggregate_backfill import backfill_state
from logic_service.storage.database import create_engine, open_database
from logic_service.storage.migrations import runner
from logic_service.storage.migrations.baseline_schema import baseline_metadata
from logic_service.storage.prediction_log import predictions
from logic_service.storage.rollout_state import RolloutStore
from logic_service.storage.writer.recorder import PredictionRecorder

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
SPEC = {"strategy": "canary", "baseline": "1", "candidate": "2", "stages": [10.0, 50.0, 100.0]}
# what 0.1.0's canary wrote (CanaryState.to_json) after one promotion
STATE = {
    "canary": {"stage": 1, "stage_started": 1_796_409_450.0, "status": "running",
               "reason": "guardrails held"}
}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'tierkit.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database("legacy"))


def fill_like_release_0_1_0(url: str) -> None:
    """Rows as 0.1.0's code wrote them, through the tables reflected from the old database."""
    engine = create_engine(url)
    old = sa.MetaData()
    old.reflect(engine)
    rows = []
    for i in range(5):
        rows.append(
            {
                "request_id": f"old-{i}",
                "record_index": 0,
                "batch_size": 1,
                "ts": T0 + timedelta(seconds=i),
                "model": "ctr",
                "version": 1796409406,
                "arm": "candidate" if i % 2 else "baseline",
                "strategy": "canary",
                "input": f'{{"userId": {i}}}',
                "output": f'{{"score": 0.{i + 1}}}',
                "score": (i + 1) / 10,
                "latency_ms": 3.5 + i,
                "status": 200,
                "error": None,
                "label": float(i % 2) if i < 4 else None,  # feedback for four of five
                "reward": 1.0 if i == 1 else None,
                "feedback_at": T0 + timedelta(minutes=1, seconds=i) if i < 4 else None,
                "feedback_updates": 2 if i == 0 else int(i < 4),
            }
        )
    rows.append(rows[0] | {"request_id": "old-failed", "status": 503, "error": "unavailable"})
    with engine.begin() as connection:
        connection.execute(old.tables["predictions"].insert(), rows)
        connection.execute(
            old.tables["rollouts"].insert(),
            {"model": "ctr", "spec": SPEC, "state": STATE, "revision": 3,
             "updated_at": 1_796_409_500.0},
        )  # fmt: skip
        connection.execute(
            old.tables["rollout_events"].insert(),
            [
                {"model": "ctr", "at": 1_796_409_400.0 + i, "kind": kind, "reason": reason,
                 "details": {"strategy": "canary", "stage": i}}
                for i, (kind, reason) in enumerate(
                    [("configured", "first configuration"), ("promoted", "guardrails held"),
                     ("promoted", "operator: looks good")]
                )
            ],
        )  # fmt: skip
        connection.execute(
            old.tables["rollout_leases"].insert(),
            {"name": "canary-evaluator", "owner": "worker-7", "until": 1_796_409_600.0},
        )
    engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every old table, read through reflection (not the new code's tables).

    Only release 0.1.0's columns: later revisions may add columns (empty on old rows).
    """
    old_columns = {t.name: [c.name for c in t.columns] for t in baseline_metadata().sorted_tables}
    engine = create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine, only=list(OLD_TABLES))
    keys = {"predictions": "id", "rollouts": "model", "rollout_events": "id"}
    found = {}
    with engine.connect() as connection:
        for name in OLD_TABLES:
            table = meta.tables[name]
            columns = [table.c[c] for c in old_columns[name]]
            query = sa.select(*columns).order_by(table.c[keys.get(name, "name")])
            found[name] = [tuple(row) for row in connection.execute(query)]
    engine.dispose()
    return found


def test_a_release_0_1_0_database_upgrades_in_place_with_every_row(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    build_release_0_1_0(url)
    fill_like_release_0_1_0(url)
    before = snapshot(url)
    assert [len(before[t]) for t in OLD_TABLES] == [6, 1, 3, 1]

    with caplog.at_level("INFO"):
        engine = open_database(url)  # what a replica of this release does at start
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("database written by release 0.1.0") for m in said), said
    assert "stamped at the baseline revision 0001" in said
    state = runner.current(engine)
    assert state.at_head and state.revision == runner.head_revision()
    assert snapshot(url) == before  # every row, every value, unchanged
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
            (runner.head_revision(),)
        ]

    # The old rows predate the aggregates: the retention pass sums them, ids up to this one
    backfill = backfill_state(engine)
    assert backfill is not None
    assert (backfill.done_id, backfill.upto_id) == (0, max(r[0] for r in before["predictions"]))
    # The new code reads the old rows...
    store = RolloutStore(engine)
    record = store.get("ctr")
    assert record is not None
    assert (record.spec, record.revision, record.state) == (
        RolloutSpec.model_validate(SPEC),
        3,
        STATE,
    )
    assert [e["reason"] for e in store.events("ctr")][-1] == "operator: looks good"
    assert store.take_lease("canary-evaluator", "worker-7", 30, now=1_796_409_550.0)
    row = _store(engine, Feedback(request_id="old-4", label=1.0), 0)
    assert (row.label, row.feedback_updates) == (1.0, 1)
    # ...and writes next to them: ids go on after the old ones (PostgreSQL's sequence too)
    recorder = PredictionRecorder(engine, Metrics(), batch_size=1)
    recorder.start()
    context = RequestContext("new-0")
    context.model, context.version = "ctr", 1796409409
    recorder.record(context, {"userId": 9}, {"prediction": {"score": 0.7}}, 200)
    assert recorder.flush(timeout=10)
    recorder.stop()
    with engine.connect() as connection:
        ids = connection.execute(sa.select(predictions.c.id).order_by(predictions.c.id)).scalars()
        ids = list(ids)
    assert len(ids) == 7 and ids[-1] > max(r[0] for r in before["predictions"])
    engine.dispose()

    # A second start finds it at head and changes nothing.
    again = open_database(url)
    result = runner.upgrade(again)
    assert result.before == result.after and not result.adopted
    again.dispose()


def test_a_release_0_1_0_database_without_its_rollout_tables_gets_them(url: str) -> None:
    """0.1.0 created the rollout tables only when the rollout store first opened."""
    build_release_0_1_0(url, tables=("predictions",))
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO predictions (request_id, record_index, batch_size, ts, model, "
            "latency_ms, status, feedback_updates) "
            "VALUES ('only', 0, 1, '2026-11-30 10:00:00', 'ctr', 1.0, 200, 0)"
        )
    engine.dispose()
    engine = open_database(url)
    result_tables = set(sa.inspect(engine).get_table_names())
    assert set(OLD_TABLES) | {"alembic_version"} <= result_tables
    assert runner.current(engine).at_head
    with engine.connect() as connection:
        assert connection.execute(sa.select(predictions.c.request_id)).scalars().all() == ["only"]
    engine.dispose()


def test_tables_that_only_look_like_release_0_1_0_are_refused_and_left_alone(url: str) -> None:
    build_release_0_1_0(url)
    engine = create_engine(url)
    with engine.begin() as connection:  # someone's hand edits
        connection.exec_driver_sql("ALTER TABLE predictions ADD COLUMN segment VARCHAR(32)")
        connection.exec_driver_sql("DROP INDEX ix_predictions_model_ts")
    engine.dispose()
    with pytest.raises(runner.MigrationError) as caught:
        open_database(url)
    message = str(caught.value)
    assert "differ from release 0.1.0's schema" in message
    assert "column predictions.segment is not expected" in message
    assert "index ix_predictions_model_ts on predictions is missing" in message
    assert "Nothing was changed" in message
    engine = create_engine(url)
    assert "alembic_version" not in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_without_migrate_on_start_a_release_0_1_0_database_is_refused(url: str) -> None:
    build_release_0_1_0(url)
    with pytest.raises(runner.SchemaNotAtHead) as caught:
        open_database(url, migrate=False)
    message = str(caught.value)
    assert "the database is from release 0.1.0" in message
    assert "no alembic_version table" in message
    assert "run `python -m logic_service db upgrade`" in message


def test_the_app_refuses_or_upgrades_a_release_0_1_0_database_as_configured(
    url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The settings reach ``open_database``: migrate_on_start, and the password file."""
    build_release_0_1_0(url)
    fill_like_release_0_1_0(url)
    storage: dict[str, Any] = {"database_url": url}
    if url.startswith("postgresql"):  # the password from a file, none in the URL
        server: PostgresServer = request.getfixturevalue("postgres_server")
        storage = {
            "database_url": url.replace(f":{server.password}@", "@"),
            "database_password_file": server.password_file,
        }
    graph = f"127.0.0.1:{free_port()}"  # a graph tier address nobody listens on

    def settings(**extra: Any) -> LogicSettings:
        return LogicSettings(
            graph={"grpc_address": graph, "deadline_ms": 300},
            model_repository=tmp_path / "models",
            storage=storage | extra,
        )

    refusing = create_app(settings(migrate_on_start=False), configure_logs=False)
    refused = pytest.raises(runner.SchemaNotAtHead, match=r"from release 0\.1\.0")
    with refused, TestClient(refusing):
        pass
    with TestClient(create_app(settings(), configure_logs=False)) as client:
        assert client.get("/healthz").status_code == 200
        engine = services_of(client.app).database
        assert runner.current(engine).at_head
        with engine.connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(predictions))
            assert count.scalar_one() == 6
