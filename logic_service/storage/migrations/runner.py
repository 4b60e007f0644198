"""Bring a database to this release's schema, or tell exactly why it is not there.

``upgrade`` is what the tier does at start (``storage.migrate_on_start``) and
what ``python -m logic_service db upgrade`` does once per rollout: under the
migration lock, adopt a release-0.1.0 database if it is one, then run every
revision up to head. ``require_head`` is the start-up check when migrations
are left to the operator: it changes nothing and refuses, naming the command
to run. Alembic is configured here in code (no alembic.ini to ship or find).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection, Engine

from logic_service.storage.migrations.adoption import (
    VERSION_TABLE,
    SchemaMismatch,
    adopt_unversioned,
)
from logic_service.storage.migrations.baseline_schema import TABLE_NAMES
from logic_service.storage.migrations.lock import migration_lock

log = logging.getLogger(__name__)


class _QuietAlembic(logging.Filter):
    """Every worker start reads the revision; keep "Running upgrade", drop the chatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_QuietAlembic())

MIGRATIONS_DIR = Path(__file__).resolve().parent
UPGRADE_COMMAND = "python -m logic_service db upgrade"


class MigrationError(RuntimeError):
    """The schema could not be brought to head; the message says why and what to do."""


class SchemaNotAtHead(RuntimeError):
    """``migrate_on_start`` is off and the database is not at this release's head."""


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its revision (None: none recorded) and this release's head."""

    revision: str | None
    head: str
    unversioned_tables: tuple[str, ...] = ()  # tierkit tables without alembic_version (0.1.0)

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    @property
    def label(self) -> str:
        """The revision, or what stands in for one: ``release 0.1.0``, ``nothing``."""
        if self.revision is not None:
            return self.revision
        return "release 0.1.0" if self.unversioned_tables else "nothing"

    def describe(self) -> str:
        if self.at_head:
            return f"at revision {self.revision} (head)"
        if self.revision is not None:
            known = ScriptDirectory.from_config(alembic_config())
            if _known(known, self.revision):
                return f"at revision {self.revision}, this release's head is {self.head}"
            return (
                f"at revision {self.revision}, which this release does not know (written by "
                f"a newer release?); this release's head is {self.head}"
            )
        if self.unversioned_tables:
            return (
                f"from release 0.1.0 (tables {', '.join(self.unversioned_tables)}, no "
                f"{VERSION_TABLE} table); this release's head is {self.head}"
            )
        return f"empty (no tierkit tables); this release's head is {self.head}"


@dataclass(frozen=True)
class UpgradeResult:
    before: SchemaState
    after: SchemaState
    adopted: bool  # a release-0.1.0 database was verified and stamped at the baseline


def alembic_config(
    connection: Connection | None = None, target_metadata: MetaData | None = None
) -> Config:
    """Alembic's configuration, built in code; env.py runs on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:  # two revisions with the same parent: a merge revision is missing
        raise MigrationError(f"the migrations have {len(heads)} heads ({', '.join(heads)})")
    return heads[0]


def schema_state(connection: Connection) -> SchemaState:
    revision = MigrationContext.configure(connection).get_current_revision()
    present = set(inspect(connection).get_table_names())
    unversioned = () if VERSION_TABLE in present else tuple(sorted(present & set(TABLE_NAMES)))
    connection.commit()  # end the reading transaction: Alembic starts its own
    return SchemaState(revision, head_revision(), unversioned)


def upgrade(engine: Engine) -> UpgradeResult:
    """Adopt a 0.1.0 database if needed, then upgrade to head; under the migration lock."""
    with migration_lock(engine) as connection:
        before = schema_state(connection)
        if before.revision is not None and not _known(
            ScriptDirectory.from_config(alembic_config()), before.revision
        ):
            raise MigrationError(f"cannot upgrade: the database is {before.describe()}")
        config = alembic_config(connection)
        try:
            adopted = adopt_unversioned(connection, config)
            command.upgrade(config, "head")
        except SchemaMismatch as exc:
            raise MigrationError(f"cannot upgrade: {exc}") from exc
        except CommandError as exc:
            raise MigrationError(f"upgrade to {before.head} failed: {exc}") from exc
        connection.commit()
        after = schema_state(connection)
    if after.revision != before.revision:
        log.info("database schema upgraded from %s to %s", before.label, after.label)
    return UpgradeResult(before, after, adopted)


def current(engine: Engine) -> SchemaState:
    with engine.connect() as connection:
        return schema_state(connection)


def require_head(engine: Engine) -> SchemaState:
    """The schema state when it is at head; ``SchemaNotAtHead`` naming the command otherwise."""
    state = current(engine)
    if not state.at_head:
        raise SchemaNotAtHead(
            f"the database is {state.describe()}, and storage.migrate_on_start is false: "
            f"run `{UPGRADE_COMMAND}` (with the same --config and TIERKIT_* variables), "
            "then start the logic tier again"
        )
    return state


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
