"""The local stack's tiers under Supervisor: what ``./scripts/up`` runs them with.

``scripts/local_stack.py`` keeps the user-facing part (flags, port check,
readiness wait, banner); this package has Supervisor (``supervisord -n`` with a
generated config) start, restart and stop the two tiers, and watches it over
XML-RPC to tell the user about restarts and to end the run on a crash loop.
A folder of the repository, not of the installed package: only the local
stack needs it (containers run one tier each, restarted by their runtime).
"""
