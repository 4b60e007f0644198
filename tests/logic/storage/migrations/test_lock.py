"""Replicas and workers starting together: one migrates, the others find head.

Six spawned processes (fresh interpreters, like uvicorn workers or
replicas) open the same empty database, wait at a barrier and all call the
upgrade at once; every one must succeed, ``alembic_version`` must hold head
once and each table exist once, on SQLite (``flock``) and PostgreSQL
(``pg_advisory_lock``). Without the lock this fails: see docs/database.md.
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from support.migrate_race import upgrade_at_the_barrier
from support.postgres import PostgresServer

from logic_service.storage.database import create_engine, schema_metadata
from logic_service.storage.migrations import runner
from logic_service.storage.migrations.lock import sqlite_lock_path

PROCESSES = 6


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared' / 'tierkit.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database("race"))


def race(url: str) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=upgrade_at_the_barrier, args=(url, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports = []
    try:
        for _ in processes:
            reports.append(results.get(timeout=180))
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {PROCESSES} processes reported: {reports}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return reports


def test_six_processes_upgrading_at_once_all_succeed_and_migrate_once(url: str) -> None:
    reports = race(url)
    errors = [r for r in reports if r[0] != "ok"]
    assert not errors, f"{len(errors)} of {PROCESSES} processes failed: {errors}"
    head = runner.head_revision()
    # exactly one found the database empty and built it; the rest found head
    befores = sorted(r[2] or "none" for r in reports)
    assert befores == sorted(["none"] + [head] * (PROCESSES - 1))
    assert {r[3] for r in reports} == {head}

    engine = create_engine(url)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        names = sa.inspect(connection).get_table_names()
    assert versions == [(head,)]
    assert sorted(names) == sorted([*schema_metadata().tables, "alembic_version"])
    if engine.dialect.name == "sqlite":
        assert sqlite_lock_path(engine).exists()  # next to the database, left in place
    ours = set(schema_metadata().tables)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": lambda n, k, _: k != "table" or n in ours}
        )
        assert compare_metadata(context, schema_metadata()) == []
    engine.dispose()
