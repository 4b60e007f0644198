"""``python -m bench graph [options]``: run a benchmark and print its report."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s - %(levelname)s - %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    tiers = parser.add_subparsers(dest="tier", required=True)
    from bench import graph

    graph.add_arguments(
        tiers.add_parser("graph", help="graph tier: in-process, no-op ceiling, graph_service")
    )
    args = parser.parse_args(argv)
    if args.tier == "graph":
        return graph.run(args)
    parser.error(f"unknown tier {args.tier}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
