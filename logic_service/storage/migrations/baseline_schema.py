"""The schema of release 0.1.0, frozen: what revision 0001 creates and what it adopts.

Release 0.1.0 created its tables with ``metadata.create_all`` and kept no
revision. This module is a copy of those table definitions as they were, not
an import of the live ones in ``prediction_log`` and ``rollout_state``: those
will change (through later revisions), this must not. It serves twice, so the
two can never disagree: revision 0001 creates exactly these tables, and a
database found without ``alembic_version`` is compared against them before it
is stamped at 0001 (``adoption.py``).

Never edit it; change the schema with a new revision in ``versions/``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

TABLE_NAMES = ("predictions", "rollouts", "rollout_events", "rollout_leases")


def baseline_metadata() -> MetaData:
    """A fresh ``MetaData`` holding the four tables of release 0.1.0."""
    metadata = MetaData()
    Table(
        "predictions",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("request_id", String(160), nullable=False),
        Column("record_index", Integer, nullable=False),
        Column("batch_size", Integer, nullable=False),
        Column("ts", DateTime(timezone=True), nullable=False),
        Column("model", String(128), nullable=False),
        Column("version", BigInteger, nullable=True),
        Column("arm", String(128), nullable=True),
        Column("strategy", String(64), nullable=True),
        Column("input", Text, nullable=True),
        Column("output", Text, nullable=True),
        Column("score", Float, nullable=True),
        Column("latency_ms", Float, nullable=False),
        Column("status", Integer, nullable=False),
        Column("error", String(64), nullable=True),
        Column("label", Float, nullable=True),
        Column("reward", Float, nullable=True),
        Column("feedback_at", DateTime(timezone=True), nullable=True),
        Column("feedback_updates", Integer, nullable=False),
        UniqueConstraint("request_id", "record_index", name="uq_predictions_request"),
        Index("ix_predictions_model_ts", "model", "ts"),
    )
    Table(
        "rollouts",
        metadata,
        Column("model", String(128), primary_key=True),
        Column("spec", JSON, nullable=False),
        Column("state", JSON, nullable=False),
        Column("revision", Integer, nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    Table(
        "rollout_events",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(128), nullable=False, index=True),
        Column("at", Float, nullable=False),
        Column("kind", String(32), nullable=False),
        Column("reason", Text, nullable=False),
        Column("details", JSON, nullable=False),
    )
    Table(
        "rollout_leases",
        metadata,
        Column("name", String(64), primary_key=True),
        Column("owner", String(128), nullable=False),
        Column("until", Float, nullable=False),
    )
    return metadata
