"""The prediction log's aggregates: per time bucket counts, histograms and label sums.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

``prediction_buckets`` and ``prediction_label_buckets`` (see
``storage/log_aggregates.py``) let the dashboard, the evaluation endpoint and
the rollout guardrails read O(time buckets) rows instead of every prediction.
The column lists are frozen here (73 latency bins, 128 score bins of each
class), not imported, so this revision means the same thing forever.

Rows logged before this revision are not summed here: one statement over a
large log would hold the write lock for as long as it takes, and the replicas
wait for the migration. It records the highest id of that moment in
``log_aggregate_backfill`` instead, and the retention pass sums those rows in
small batches (``storage/aggregate_backfill.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LATENCY_BINS = 73
SCORE_BINS = 128


def upgrade() -> None:
    op.create_table(
        "prediction_buckets",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("bucket_s", sa.SmallInteger, primary_key=True),
        sa.Column("start", sa.BigInteger, primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("arm", sa.String(128), primary_key=True),
        sa.Column("api_version", sa.String(16), primary_key=True),
        sa.Column("strategy", sa.String(64), primary_key=True),
        sa.Column("status", sa.Integer, primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("records", sa.BigInteger, nullable=False),
        *(sa.Column(f"lat_{k:02d}", sa.Integer, nullable=False) for k in range(LATENCY_BINS)),
        sa.Column("faults", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "prediction_label_buckets",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("bucket_s", sa.SmallInteger, primary_key=True),
        sa.Column("start", sa.BigInteger, primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("arm", sa.String(128), primary_key=True),
        *(
            sa.Column(name, sa.BigInteger, nullable=False)
            for name in ("feedback", "positives", "scored", "nonbinary", "out_of_range", "hits")
        ),
        *(
            sa.Column(name, sa.Float, nullable=False)
            for name in ("loss_sum", "loss_sq_sum", "abs_err_sum", "sq_err_sum")
        ),
        *(sa.Column(f"pos_{k:03d}", sa.Integer, nullable=False) for k in range(SCORE_BINS)),
        *(sa.Column(f"neg_{k:03d}", sa.Integer, nullable=False) for k in range(SCORE_BINS)),
    )


    backfill = op.create_table(
        "log_aggregate_backfill",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("upto_id", sa.BigInteger, nullable=False),
        sa.Column("done_id", sa.BigInteger, nullable=False),
    )
    upto = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM predictions")).scalar()
    op.bulk_insert(backfill, [{"name": "predictions", "upto_id": upto, "done_id": 0}])


def downgrade() -> None:
    op.drop_table("log_aggregate_backfill")
    op.drop_table("prediction_label_buckets")
    op.drop_table("prediction_buckets")
