"""tierkit's offline export tool: trained models -> versioned SavedModel directories.

Run it as ``python -m export`` (or the ``tierkit-export`` console script); see
``docs/export.md``. Every subcommand validates its input up front and reports
bad input as one ``error: ...`` line with exit status 2.
"""

from __future__ import annotations

from importlib import metadata

TOOL_NAME = "tierkit-export"

try:
    __version__ = metadata.version("tierkit")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.1.0"
