"""Alembic's environment: run the revisions on the connection tierkit hands over.

There is no alembic.ini and no URL here: ``runner.py`` builds the Alembic
``Config`` in code and passes, in ``config.attributes``, the connection that
already holds the migration lock (``lock.py``), so the revisions run inside
the lock and with the engine options (SQLite pragmas, password from a file)
of the running tier. ``target_metadata`` is only used when a developer
autogenerates a revision.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "tierkit's migrations run through `python -m logic_service db upgrade` "
        "(logic_service.storage.migrations.runner), which passes the connection; "
        "there is no alembic.ini"
    )
context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    # SQLite alters a table by copying it: autogenerate must write batch operations.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
