"""Rollout state in the shared database, so restarts and every worker see the same rollout.

One ``rollouts`` row per model holds the spec (what the operator asked for),
the dynamic state (canary stage, bandit shares) and a revision number that
every change increases; workers re-read the rows on a short interval and
rebuild their routing only when a revision moved. ``rollout_events`` keeps
each transition with its reason. ``rollout_leases`` lets exactly one worker
run the canary evaluator: a lease is taken with one conditional UPDATE, which
is atomic on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.database import metadata, open_database

log = logging.getLogger(__name__)

rollouts = Table(
    "rollouts",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("state", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)
rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", JSON, nullable=False),
)
rollout_leases = Table(
    "rollout_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("until", Float, nullable=False),
)


@dataclass(frozen=True)
class RolloutRecord:
    model: str
    spec: RolloutSpec
    state: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    updated_at: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "spec": self.spec.model_dump(mode="json"),
            "state": self.state,
            "revision": self.revision,
            "updated_at": self.updated_at,
        }


class StaleRevision(RuntimeError):
    """Someone else changed the rollout since it was read; re-read and decide again."""


class RolloutStore:
    """Reads and writes of the rollout tables; ``open_database`` made them (migrations)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> RolloutStore:
        return cls(open_database(url))

    def ensure(
        self,
        model: str,
        spec: RolloutSpec,
        state: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> RolloutRecord:
        """The stored rollout, or ``spec`` stored as the first one: the database wins a restart."""
        now = time.time() if now is None else now
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(rollouts).values(
                        model=model,
                        spec=spec.model_dump(mode="json"),
                        state=state or {},
                        revision=1,
                        updated_at=now,
                    )
                )
                conn.execute(_event(model, now, "configured", "first configuration", spec, {}))
        except IntegrityError:
            pass  # another worker or an earlier run stored it first
        record = self.get(model)
        assert record is not None
        return record

    def get(self, model: str) -> RolloutRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.model == model)).first()
        return _record(row) if row is not None else None

    def load_all(self) -> dict[str, RolloutRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rollouts)).all()
        return {row.model: _record(row) for row in rows}

    def revisions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(rollouts.c.model, rollouts.c.revision)).all()
        return {row.model: row.revision for row in rows}

    def save(
        self,
        record: RolloutRecord,
        spec: RolloutSpec,
        state: dict[str, Any],
        kind: str,
        reason: str,
        details: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> RolloutRecord:
        """Write spec+state if nobody changed the row since ``record`` was read; log the event."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            result = conn.execute(
                update(rollouts)
                .where(rollouts.c.model == record.model, rollouts.c.revision == record.revision)
                .values(
                    spec=spec.model_dump(mode="json"),
                    state=state,
                    revision=record.revision + 1,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                raise StaleRevision(f"rollout of {record.model} changed meanwhile")
            conn.execute(_event(record.model, now, kind, reason, spec, details or {}))
        log.info("rollout %s: %s: %s", record.model, kind, reason)
        return RolloutRecord(record.model, spec, state, record.revision + 1, now)

    def record_event(
        self, model: str, kind: str, reason: str, details: dict[str, Any], now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            conn.execute(
                insert(rollout_events).values(
                    model=model, at=now, kind=kind, reason=reason, details=details
                )
            )

    def events(self, model: str, limit: int = 100, kind: str | None = None) -> list[dict]:
        query = select(rollout_events).where(rollout_events.c.model == model)
        if kind is not None:
            query = query.where(rollout_events.c.kind == kind)
        query = query.order_by(rollout_events.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {"at": r.at, "kind": r.kind, "reason": r.reason, "details": r.details}
            for r in reversed(rows)
        ]

    def take_lease(self, name: str, owner: str, ttl_s: float, now: float | None = None) -> bool:
        """True when ``owner`` holds the lease now (taken, renewed, or the old one expired)."""
        now = time.time() if now is None else now
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(rollout_leases).values(name=name, owner=owner, until=now + ttl_s)
                )
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            result = conn.execute(
                update(rollout_leases)
                .where(
                    rollout_leases.c.name == name,
                    (rollout_leases.c.owner == owner) | (rollout_leases.c.until < now),
                )
                .values(owner=owner, until=now + ttl_s)
            )
        return result.rowcount == 1


def _record(row: Any) -> RolloutRecord:
    spec = row.spec if isinstance(row.spec, dict) else json.loads(row.spec)
    state = row.state if isinstance(row.state, dict) else json.loads(row.state)
    return RolloutRecord(
        row.model, RolloutSpec.model_validate(spec), state, row.revision, row.updated_at
    )


def _event(
    model: str, now: float, kind: str, reason: str, spec: RolloutSpec, details: dict[str, Any]
) -> Any:
    return insert(rollout_events).values(
        model=model,
        at=now,
        kind=kind,
        reason=reason,
        details={"strategy": spec.strategy, **details},
    )
