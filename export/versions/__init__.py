"""``python -m export versions``: list, prune and roll back a model's published versions.

The disk knows sizes, dates, parity and APIs; only the running stack knows what
is loaded and in use, so this asks the logic tier's admin API over HTTP (the
export tool imports no server). Pruning deletes folders, so it runs where the
model repository is writable: the host, not the logic container.

| module | what it holds |
| --- | --- |
| ``arguments`` | the subcommand's arguments and help, added to export's parser by ``cli`` |
| ``command`` | checks the arguments, runs one action, prints text or ``--json``, exit status |
| ``disk`` | version folders and their manifests: size, created, parity, API |
| ``stack`` | the admin API client: loaded, ready, in use and why; pins; the routing labels |
| ``listing`` | one row per version, the disk's facts and the stack's merged |
| ``prune`` | which versions may go (never one something needs), removed by rename then delete |
| ``rollback`` | the stable label moved back one version, both kept loaded, undone on failure |

docs/rollouts.md ("The versions CLI") shows a session.
"""
