"""What goes into a published version directory, and how it appears atomically.

The feature artifacts that travel with the version (transformer, feature
code), the end-to-end check of its example record, the TF Serving warmup
records, and the temporary directory renamed into place. ``pipeline`` calls
these; they import ``checks`` and the package's shared modules.
"""
