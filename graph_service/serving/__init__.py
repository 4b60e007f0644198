"""Which versions are served, TF Serving's ``core/``: one idea per module.

The config names the models; a source finds their versions on disk; the version
policy picks the aspired ones; the manager loads and unloads them, new before
old, and lends loaded versions to requests. Imports ``inference``, ``runtime``
and ``cpu``; never ``handlers`` or ``api``.
"""
