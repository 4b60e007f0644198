"""Fixtures of the logic tier's tests: one real PostgreSQL for the whole session.

Tests marked ``postgres`` ask for ``postgres_server`` (the server) or
``postgres_url`` (a fresh empty database on it, ``postgresql://`` with the
password, as users write it). Skipped, with the reason, only where the
server cannot run here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.postgres import PostgresServer, PostgresUnavailable, throwaway_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with throwaway_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url(postgres_server.create_database())
