"""Alembic revisions, one file each (``NNNN_what.py``, ``revision = "NNNN"``).

A package only so that a wheel ships them; Alembic loads the files by path.
"""
