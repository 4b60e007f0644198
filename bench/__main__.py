"""``python -m bench TIER``: graph, stack, capacity, scaling, compression, schema,
prediction-log, backfill, writer."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# name -> (module in bench/, one line of help). Each module is imported only when it
# runs: `graph` pulls in TensorFlow, `stack` and `capacity` must not.
BENCHMARKS = {
    "graph": ("graph", "graph tier: in-process, no-op ceiling, graph_service"),
    "stack": ("stack", "tierkit side by side with Flask, KServe and a FastAPI ceiling"),
    "capacity": ("capacity", "replicas needed per traffic tier, from a stack benchmark's figures"),
    "scaling": ("scaling", "Kubernetes pods and cores of each tier, from the same figures"),
    "compression": ("compression", "SavedModel vs float16, dynamic and int8 TF Lite versions"),
    "schema": ("schema", "input schema validators on the seed request (jsonschema-rs vs the rest)"),
    "prediction-log": (
        "prediction_log",
        "the prediction log at 3.6 M rows: reads, retention, disk",
    ),
    "backfill": (
        "aggregate_backfill",
        "after an upgrade to 0004: summing a log written without aggregates",
    ),
    "writer": (
        "prediction_log_writer",
        "the prediction log's writer at a running stack's maximum throughput (0 dropped?)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s - %(levelname)s - %(message)s")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    tiers = parser.add_subparsers(dest="tier", required=True)
    parsers = {name: tiers.add_parser(name, help=text) for name, (_, text) in BENCHMARKS.items()}
    chosen = (argv if argv is not None else sys.argv[1:])[:1]
    module = None
    if chosen and chosen[0] in BENCHMARKS:
        module = importlib.import_module(f"bench.{BENCHMARKS[chosen[0]][0]}")
        sub = parsers[chosen[0]]
        sub.description = module.__doc__
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(sub)
    args = parser.parse_args(argv)
    if module is None:
        parser.error(f"unknown tier {args.tier}")
        return 2
    return module.run(args)


if __name__ == "__main__":
    sys.exit(main())
