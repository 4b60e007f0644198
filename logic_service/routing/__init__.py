"""Which version answers a request: the version policy, rollouts and their strategies.

Split, canary, blue-green and bandit choose the primary version; shadow and
holdout follow up on its answer; a caller may pin a version or label instead;
a request's API (v1, v2...) narrows the versions it may meet. Per request it
reads in-memory snapshots only; state lives in ``storage``. Imports
``versions``, ``graph`` (errors), ``storage`` and below; never ``prediction``
or ``api``.
"""
