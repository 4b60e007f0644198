"""Which versions are served, TF Serving's ``core/``: one idea per module.

The config names the models; a source finds their versions on disk; the version
policy picks the aspired ones; the availability-preserving policy (a pure
function) names the next load or unload; the manager applies it and lends
loaded versions to requests through handles; the loader loads one version the
way that keeps the others serving fast. Imports ``inference``, ``runtime`` and
``cpu``; never ``handlers`` or ``api``.
"""
