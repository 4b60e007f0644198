"""Explicit pins: versions an operator (or a ``rollout set`` in progress) wants kept loaded.

A pin is one row of ``version_pins`` in the shared database, so every replica
and worker sees it and the one process that writes the graph tier's config
(``keeper``) includes it. ``holder`` says who holds it: ``operator`` for a pin
made through the admin API, ``pending:<id>`` for the short-lived pin a
``rollout set`` takes while it waits for a version to load. Pending pins carry
``expires_at``, so a process that dies while waiting leaves nothing pinned for
long; operator pins never expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from logic_service.storage.database import metadata

OPERATOR = "operator"
PENDING_PREFIX = "pending:"

version_pins = Table(
    "version_pins",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("holder", String(160), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
)


@dataclass(frozen=True)
class Pin:
    model: str
    version: int
    holder: str
    reason: str
    created_at: float
    expires_at: float | None = None

    @property
    def pending(self) -> bool:
        return self.holder.startswith(PENDING_PREFIX)

    def public(self) -> dict:
        return {
            "version": self.version,
            "holder": self.holder,
            "reason": self.reason,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


class PinStore:
    """Reads and writes of ``version_pins`` (the table is made by revision 0002)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        model: str,
        versions: Iterable[int],
        holder: str,
        reason: str,
        expires_at: float | None = None,
        now: float | None = None,
    ) -> None:
        """Pin ``versions`` for ``holder``; pinning a version it already holds changes nothing."""
        now = time.time() if now is None else now
        for version in sorted(set(versions)):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(version_pins).values(
                            model=model,
                            version=int(version),
                            holder=holder,
                            reason=reason,
                            created_at=now,
                            expires_at=expires_at,
                        )
                    )
            except IntegrityError:
                pass  # already held by this holder

    def remove(self, model: str, versions: Iterable[int] | None, holder: str) -> int:
        """Drop ``holder``'s pins of ``model`` (all of them when ``versions`` is None)."""
        query = delete(version_pins).where(
            version_pins.c.model == model, version_pins.c.holder == holder
        )
        if versions is not None:
            query = query.where(version_pins.c.version.in_([int(v) for v in versions]))
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount

    def active(self, model: str | None = None, now: float | None = None) -> list[Pin]:
        """Pins in force: operator pins, and pending pins that have not expired."""
        now = time.time() if now is None else now
        query = select(version_pins).where(
            version_pins.c.expires_at.is_(None) | (version_pins.c.expires_at > now)
        )
        if model is not None:
            query = query.where(version_pins.c.model == model)
        query = query.order_by(version_pins.c.model, version_pins.c.version, version_pins.c.holder)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Pin(r.model, int(r.version), r.holder, r.reason, r.created_at, r.expires_at)
            for r in rows
        ]

    def drop_expired(self, now: float | None = None) -> int:
        """Forget pending pins whose waiter is long gone (the keeper does it now and then)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            return conn.execute(
                delete(version_pins).where(
                    version_pins.c.expires_at.is_not(None), version_pins.c.expires_at <= now
                )
            ).rowcount
