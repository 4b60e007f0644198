"""Schema migrations of the logic tier's database (Alembic, configured in code).

- ``runner.py``: ``upgrade`` (adopt, then upgrade to head, under the lock),
  ``current``, ``require_head``
- ``lock.py``: the migration lock (``pg_advisory_lock`` on PostgreSQL,
  ``flock`` next to a SQLite file)
- ``adoption.py``: a release-0.1.0 database (no ``alembic_version``) is
  verified, then stamped at 0001
- ``baseline_schema.py``: release 0.1.0's tables, frozen: what revision 0001
  creates and what adoption compares against
- ``env.py``: Alembic's environment, run on the locked connection ``runner``
  hands over
- ``script.py.mako``: the template of a new revision
- ``versions/``: the revisions, ``0001_baseline.py`` first

The tables themselves stay on ``storage/database.py``'s ``metadata``, in the
modules that query them; ``tests/logic/storage/migrations/test_migrations.py``
fails whenever the migrated schema and that metadata differ.
"""

import logging

# Alembic announces each plugin at INFO when first imported (and each autogenerate
# comparison sets them up again): set before any ``alembic`` import of this package.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
