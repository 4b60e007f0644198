"""The storage tests' database: each test that asks for ``both_engines`` (or ``both_urls``)
runs on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.postgres import PostgresServer

from logic_service.storage.database import open_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def both_urls(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database's URL, on SQLite, then on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(server.create_database())


@pytest.fixture
def both_engines(both_urls: str) -> Iterator[sa.Engine]:
    """A fresh database at the schema's head, on SQLite, then on the session's PostgreSQL."""
    engine = open_database(both_urls)
    yield engine
    engine.dispose()
