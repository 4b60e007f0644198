"""tierkit's offline export tool: trained models -> versioned SavedModel directories.

Run it as ``python -m export`` (or the ``tierkit-export`` console script); see
``docs/export.md``. Every subcommand validates its input up front and reports
bad input as one ``error: ...`` line with exit status 2.

Its layers, top to bottom (each imports only those below it; ``lint-imports``):

    __main__, cli       the subcommands and their parser
    pipeline            one export, from the original to a published version
    sources/, publish/  Keras, TF1 checkpoint and SavedModel sources; what goes into
                        the version directory (features, warmup, atomic publish)
    checks/             signatures, the TF-Serving-style session loader, samples, parity
    manifest, model_config, options, progress
    digests, errors

docs/export.md has the table of every module.
"""

from __future__ import annotations

from importlib import metadata

TOOL_NAME = "tierkit-export"

try:
    __version__ = metadata.version("tierkit")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.1.0"
