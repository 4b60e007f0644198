"""The arguments of ``python -m export versions``, added to export's parser by ``cli``.

Kept here so ``export/cli.py`` gains one subcommand and nothing else moves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from export.options import DEFAULT_REPOSITORY

HELP = """\
List a model's versions with what the disk knows (size, created, parity, API)
and what the running stack knows (loaded, labels, rollout roles, pins: asked
of the logic tier's admin API); prune old ones; roll the stable label back.

  python -m export versions NAME [--json]
  python -m export versions NAME prune --keep N [--dry-run] [--stack-down]
  python -m export versions NAME rollback [--to VERSION] [--wait SECONDS]

The admin API: --url / TIERKIT_ADMIN_URL (default http://127.0.0.1:8000),
--token / TIERKIT_ADMIN_TOKEN / TIERKIT_ADMIN_TOKEN_FILE. prune refuses when
it cannot learn what is in use, unless --stack-down says no graph tier serves
the repository. Bad input exits 2 and changes nothing.

examples:
  python -m export versions ctr
  python -m export versions ctr prune --keep 3 --dry-run
  python -m export versions ctr rollback
"""

ACTIONS = ("list", "prune", "rollback")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="model name (directory under --repo)")
    parser.add_argument(
        "action",
        nargs="?",
        default="list",
        choices=ACTIONS,
        help="list (default), prune or rollback",
    )
    parser.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help="model repository directory (default: %(default)s)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("models.config"),
        help="the ModelServerConfig with the model's labels (default: %(default)s)",
    )
    parser.add_argument("--url", help="logic tier base URL (default $TIERKIT_ADMIN_URL)")
    parser.add_argument("--token", help="admin token (default $TIERKIT_ADMIN_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    pruning = parser.add_argument_group("prune")
    pruning.add_argument(
        "--keep", type=int, metavar="N", help="keep the N newest versions (N >= 1)"
    )
    pruning.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    pruning.add_argument(
        "--stack-down",
        action="store_true",
        help="no graph tier serves this repository: protect the labels of --config and prune "
        "beyond --keep without asking the admin API",
    )
    rolling = parser.add_argument_group("rollback")
    rolling.add_argument(
        "--to",
        type=int,
        metavar="VERSION",
        help="roll back to this version (default: the "
        "previous published version of the same request API)",
    )
    rolling.add_argument(
        "--label", default="stable", help="the label that routes (default: %(default)s)"
    )
    rolling.add_argument(
        "--wait",
        type=float,
        default=90.0,
        metavar="SECONDS",
        help="how long to wait for the logic tier to route by the moved label "
        "(default: %(default)g)",
    )
