"""The shared database of every replica and worker, and what is kept in it.

The engine and its URL, the Alembic migrations that make the schema, the
prediction log (written off the request path), evaluation numbers read from
it, rollout state and retired APIs. Imports ``observability`` and below.
"""
