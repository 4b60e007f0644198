"""The subcommands besides ``serve``: ``rollout`` and ``api`` (admin API clients), ``db``,
``init-secrets``. Called by ``__main__``; ``rollout`` and ``api`` talk HTTP only, so the
CLI and HTTP callers share one validation and one history.
"""
