"""What goes into a published version directory, and how it appears atomically.

The feature artifact that travels with the version, the TF Serving warmup
records, and the temporary directory renamed into place. ``pipeline`` calls
these; they import ``checks`` and the package's shared modules.
"""
