"""Baseline: the four tables of release 0.1.0 (predictions, rollouts, rollout_events, leases).

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-02

Created from ``baseline_schema`` rather than spelled out again with
``op.create_table``: the same definition is what a release-0.1.0 database is
verified against before it is stamped here, so the two cannot drift.
"""

from __future__ import annotations

from alembic import op

from logic_service.storage.migrations.baseline_schema import baseline_metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    baseline_metadata().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind(), checkfirst=False)
