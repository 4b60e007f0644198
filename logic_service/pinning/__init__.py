"""Versions in use stay loaded in the graph tier, whatever the user's version policy.

| module | what it holds |
| --- | --- |
| ``pins`` | the ``version_pins`` table: explicit pins (operator, pending ``rollout set``) |
| ``in_use`` | which versions are in use, and why (rollout role, label, pin, API, last servable) |
| ``api_use`` | the newest version of every live request API, once a model serves two |
| ``models_config`` | the user's models.config, version folders, the effective config (pure) |
| ``plan`` | the effective config from today's files and database; the repository's new models |
| ``keeper`` | writes the effective config for the graph tier, one process at a time |
| ``seed`` | the effective file before the graph tier starts (``./scripts/up``) |
| ``targets`` | ``rollout set``: published? loaded? pin and wait, or a 4xx naming it |
| ``missing`` | versions a rollout names that cannot serve now (events, metric, dashboard) |
| ``admin`` | ``/admin/models/{model}/versions`` and ``.../pins/{version}`` |

docs/rollouts.md ("Versions in use stay loaded") tells the whole story.
"""
