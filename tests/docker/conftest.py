"""Fixtures of the real-container tests (marker ``docker``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_sandbox import Engine, start_engine, stop_engine


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A Docker engine with every image the stack names (real or stand-in)."""
    started = start_engine()
    try:
        yield started
    finally:
        stop_engine(started)
