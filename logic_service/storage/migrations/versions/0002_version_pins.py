"""Version pins: versions an operator or a pending ``rollout set`` keeps loaded.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

``version_pins`` is read by the graph-config keeper (logic_service/pinning),
which keeps every version in use loaded in the graph tier whatever the user's
version policy. One row per (model, version, holder); pending pins of a
``rollout set`` that waits for a version to load carry ``expires_at``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_pins",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("holder", sa.String(160), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("version_pins")
