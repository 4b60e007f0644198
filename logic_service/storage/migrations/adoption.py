"""A database written by release 0.1.0 joins the migration history in place.

Release 0.1.0 created its tables with ``create_all`` and has no
``alembic_version`` table. Upgrading it must keep every row, so it is not
re-created: its tables are compared with the baseline (``baseline_schema``,
the very definition revision 0001 creates) and, when they match, stamped at
0001; later revisions then run on it like on any other database. When they do
not match (a hand-edited table, a foreign schema of the same name) nothing is
touched and the error names each difference.

0.1.0 created the rollout tables only once the rollout store first opened,
so a 0.1.0 database may lack some of the four tables; a table missing as a
whole is created (0.1.0 would have done the same on its next start), a table
that exists must match.
"""

from __future__ import annotations

import logging
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

from logic_service.storage.migrations.baseline_schema import TABLE_NAMES, baseline_metadata

log = logging.getLogger(__name__)

BASELINE_REVISION = "0001"
VERSION_TABLE = "alembic_version"


class SchemaMismatch(RuntimeError):
    """Tables without a revision that are not release 0.1.0's: refused, nothing changed."""


def differences(connection: Connection, metadata: MetaData) -> list[Any]:
    """``compare_metadata`` of the database against ``metadata``, limited to its tables.

    Other tables (another application sharing the database, Alembic's own) are
    not tierkit's business and never count as a difference.
    """
    ours = set(metadata.tables)

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return type_ != "table" or name in ours

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


def describe(diff: Any) -> str:
    """One difference in words, from the database's side: what it lacks or has extra."""
    if isinstance(diff, list):  # column modifications come grouped per column
        return "; ".join(describe(item) for item in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        verdict = "is missing" if kind == "add_table" else "is not expected"
        return f"table {diff[1].name} {verdict}"
    if kind in ("add_column", "remove_column"):
        verdict = "is missing" if kind == "add_column" else "is not expected"
        return f"column {diff[2]}.{diff[3].name} {verdict}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        what = "index" if kind.endswith("index") else "constraint"
        verdict = "is missing" if kind.startswith("add") else "is not expected"
        item = diff[1]
        return f"{what} {item.name} on {item.table.name} {verdict}"
    if kind == "modify_type":
        return f"column {diff[2]}.{diff[3]} is {diff[5]}, expected {diff[6]}"
    if kind == "modify_nullable":
        found = "NULL" if diff[5] else "NOT NULL"
        wanted = "NULL" if diff[6] else "NOT NULL"
        return f"column {diff[2]}.{diff[3]} is {found}, expected {wanted}"
    return repr(diff)


def adopt_unversioned(connection: Connection, config: Config) -> bool:
    """Stamp a release-0.1.0 database at the baseline; False when there is nothing to adopt.

    Runs under the migration lock, before ``upgrade``. A database with
    ``alembic_version`` is already in the history; one without any tierkit
    table is new, and revision 0001 will create everything.
    """
    present = set(inspect(connection).get_table_names())
    found = present & set(TABLE_NAMES)
    if VERSION_TABLE in present or not found:
        return False
    baseline = baseline_metadata()
    missing = set(TABLE_NAMES) - found
    problems = [d for d in differences(connection, baseline) if _table_of(d) not in missing]
    if problems:
        raise SchemaMismatch(
            f"the database has tierkit's tables ({', '.join(sorted(found))}) but no "
            f"{VERSION_TABLE} table, and they differ from release 0.1.0's schema: "
            + "; ".join(describe(d) for d in problems)
            + ". Nothing was changed: fix or move these tables, then start again."
        )
    log.info(
        "database written by release 0.1.0 (tables %s, no %s): schema verified",
        ", ".join(sorted(found)),
        VERSION_TABLE,
    )
    if missing:
        log.info("creating the tables 0.1.0 had not created yet: %s", ", ".join(sorted(missing)))
        baseline.create_all(connection, tables=[baseline.tables[n] for n in sorted(missing)])
    connection.commit()
    command.stamp(config, BASELINE_REVISION)
    connection.commit()
    log.info("stamped at the baseline revision %s", BASELINE_REVISION)
    return True


def _table_of(diff: Any) -> str | None:
    """The table a difference is about (None when it cannot be told)."""
    if isinstance(diff, list):
        return _table_of(diff[0]) if diff else None
    kind, item = diff[0], diff[1]
    if kind.endswith("_table"):
        return item.name
    if kind.endswith(("_index", "_constraint")):
        return item.table.name
    return diff[2] if len(diff) > 2 and isinstance(diff[2], str) else None
