"""API versions: the request API of every prediction, and the retired APIs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

``predictions.api_version`` records the path's API (v1, v2...) so retiring
one can be refused while it has traffic; ``ix_predictions_model_api_ts``
makes that count one index range. Existing rows keep NULL (they all came
through /v1 and are counted as v1): back-filling a large log would hold a
lock for as long as it takes. ``retired_apis`` holds what ``api retire``
decided, shared by every replica.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column is added in place on SQLite and PostgreSQL alike: no table copy.
    op.add_column("predictions", sa.Column("api_version", sa.String(16), nullable=True))
    op.create_index("ix_predictions_model_api_ts", "predictions", ["model", "api_version", "ts"])
    op.create_table(
        "retired_apis",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("api_version", sa.String(16), primary_key=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retired_apis")
    op.drop_index("ix_predictions_model_api_ts", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("api_version")
