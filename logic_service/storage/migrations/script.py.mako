"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

SQLite cannot ALTER most things: change tables inside
``with op.batch_alter_table("name") as batch:`` so the same revision runs on
SQLite and PostgreSQL. tests/logic/storage/migrations/test_migrations.py fails
until the models' ``metadata`` and the migrated database agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
