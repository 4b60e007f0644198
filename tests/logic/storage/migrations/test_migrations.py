"""The migrations build exactly the schema the code queries, on SQLite and PostgreSQL.

``compare_metadata`` between a database migrated to head and ``metadata``
(every table module loaded) must find nothing: a column added to a model
without a revision, or a revision the models do not follow, fails here.
Also: ``migrate_on_start: false`` refuses every schema that is not at head,
and a revision this release does not know is refused rather than touched.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from logic_service.storage.database import create_engine, open_database, schema_metadata
from logic_service.storage.migrations import runner
from logic_service.storage.migrations.baseline_schema import TABLE_NAMES, baseline_metadata

REPO = Path(__file__).resolve().parents[4]
MIGRATIONS = REPO / "logic_service" / "migrations"


@pytest.fixture
def url(both_urls: str) -> str:
    """An empty database of each kind (the storage tests' ``both_urls``)."""
    return both_urls


@pytest.fixture
def engine(both_engines: sa.Engine) -> sa.Engine:
    """That database opened at head (``both_engines``, on the same URL)."""
    return both_engines


def _diff(engine: sa.Engine, metadata: sa.MetaData) -> list:
    ours = set(metadata.tables)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: kind != "table" or name in ours,
            },
        )
        return compare_metadata(context, metadata)


def test_the_migrated_schema_is_the_models_schema(engine: sa.Engine) -> None:
    metadata = schema_metadata()
    # every table module is loaded: the baseline's tables and those added since
    assert set(metadata.tables) == {
        *TABLE_NAMES,
        "retired_apis",
        "version_pins",
        "prediction_buckets",
        "prediction_label_buckets",
        "log_aggregate_backfill",
    }
    assert _diff(engine, metadata) == []
    # and the constraints the code relies on are really there, by name
    inspector = sa.inspect(engine)
    assert "alembic_version" in inspector.get_table_names()
    assert [u["name"] for u in inspector.get_unique_constraints("predictions")] == [
        "uq_predictions_request"
    ]
    indexes = {
        i["name"]: i["column_names"]
        for i in inspector.get_indexes("predictions")
        if not i.get("duplicates_constraint")  # PostgreSQL: the unique constraint's own index
    }
    assert indexes == {
        "ix_predictions_model_ts": ["model", "ts"],
        "ix_predictions_model_api_ts": ["model", "api_version", "ts"],  # api retire's count
    }
    assert {i["name"] for i in inspector.get_indexes("rollout_events")} == {
        "ix_rollout_events_model"
    }


def test_the_comparison_does_see_a_model_change_without_a_revision(engine: sa.Engine) -> None:
    changed = sa.MetaData()
    for table in schema_metadata().sorted_tables:
        table.to_metadata(changed)
    predictions = changed.tables["predictions"]
    predictions.append_column(sa.Column("segment", sa.String(32), nullable=True))
    predictions.c.arm.type = sa.String(64)
    sa.Index("ix_predictions_request", predictions.c.request_id)
    kinds = sorted(d[0][0] if isinstance(d, list) else d[0] for d in _diff(engine, changed))
    assert kinds == ["add_column", "add_index", "modify_type"]


def test_the_prediction_id_is_an_integer_primary_key_on_sqlite_and_bigint_on_postgres(
    engine: sa.Engine,
) -> None:
    (column,) = [c for c in sa.inspect(engine).get_columns("predictions") if c["name"] == "id"]
    expected = sa.Integer if engine.dialect.name == "sqlite" else sa.BigInteger
    assert type(column["type"]) is expected or isinstance(column["type"], expected)
    if engine.dialect.name == "sqlite":  # INTEGER PRIMARY KEY: the rowid, assigned by SQLite
        assert str(column["type"]) == "INTEGER"
    else:
        assert str(column["type"]) == "BIGINT" and column["autoincrement"]


def test_the_migrations_have_one_head_and_a_baseline_that_is_release_0_1_0(
    engine: sa.Engine,
) -> None:
    assert runner.head_revision() == runner.current(engine).revision
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
            (runner.head_revision(),)
        ]
        # every later revision comes down again to exactly release 0.1.0's schema
        command.downgrade(runner.alembic_config(connection), "0001")
        connection.commit()
    assert _diff(engine, baseline_metadata()) == []


def test_opening_again_changes_nothing(url: str) -> None:
    for _ in range(2):
        engine = open_database(url)
        result = runner.upgrade(engine)
        assert result.before == result.after and not result.adopted
        assert result.after.at_head
        engine.dispose()


def test_without_migrate_on_start_an_empty_database_is_refused(url: str) -> None:
    with pytest.raises(runner.SchemaNotAtHead) as caught:
        open_database(url, migrate=False)
    message = str(caught.value)
    assert "empty (no tierkit tables)" in message
    assert "storage.migrate_on_start is false" in message
    assert "run `python -m logic_service db upgrade`" in message
    engine = create_engine(url)
    assert sa.inspect(engine).get_table_names() == []  # refusing wrote nothing
    engine.dispose()


def test_without_migrate_on_start_a_database_at_head_opens(engine: sa.Engine, url: str) -> None:
    again = open_database(url, migrate=False)
    assert runner.current(again).at_head
    again.dispose()


def test_a_database_below_head_or_from_a_newer_release_is_refused(
    engine: sa.Engine, url: str
) -> None:
    with engine.connect() as connection:
        command.downgrade(runner.alembic_config(connection), "base")
        connection.commit()
    with pytest.raises(runner.SchemaNotAtHead, match="empty"):
        open_database(url, migrate=False)

    open_database(url).dispose()  # back to head
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(runner.SchemaNotAtHead, match="at revision 9999, which this release does"):
        open_database(url, migrate=False)
    with pytest.raises(runner.MigrationError, match="written by a newer release"):
        open_database(url)
    with engine.connect() as connection:  # nothing was touched
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
            ("9999",)
        ]


def test_a_wheel_would_ship_every_migration_file() -> None:
    """``pip install .`` (not editable) copies packages' .py files and declared package data."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["logic_service"]
    package_root = REPO / "logic_service"
    for path in MIGRATIONS.rglob("*"):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        if path.suffix == ".py":
            assert (path.parent / "__init__.py").exists(), f"{path}: its folder is no package"
        else:
            relative = path.relative_to(package_root)
            assert any(relative.match(p) for p in patterns), f"{relative}: not in package-data"
