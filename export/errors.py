"""The one error type of the export tool.

Anything the user can get wrong (a path, a tensor name, a sample, an existing
version) is raised as ``ExportError`` with a message that names the problem;
``python -m export`` prints it as ``error: <message>`` and exits with status 2.
Keeping it separate from library exceptions is what lets the CLI promise "no
traceback for bad input" while still surfacing real bugs.
"""

from __future__ import annotations


class ExportError(Exception):
    """Bad input or a failed check: reported to the user, exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
