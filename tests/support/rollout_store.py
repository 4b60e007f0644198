"""Shared pieces of the rollout tests: a real SQLite store in a tmp dir and a movable clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from logic_service.storage.database import open_database
from logic_service.storage.rollout_state import RolloutStore


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_store(directory: Path) -> RolloutStore:
    return RolloutStore(open_database(f"sqlite:///{directory / 'tierkit.db'}"))
