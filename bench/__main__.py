"""``python -m bench {graph,stack,capacity,scaling,compression} [options]``: run a benchmark."""

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
    # Each benchmark's module is imported only when it runs: `graph` pulls in
    # TensorFlow, `stack` and `capacity` must not.
    graph = tiers.add_parser("graph", help="graph tier: in-process, no-op ceiling, graph_service")
    stack = tiers.add_parser(
        "stack", help="tierkit side by side with Flask, KServe and a FastAPI ceiling"
    )
    capacity = tiers.add_parser(
        "capacity", help="replicas needed per traffic tier, from a stack benchmark's figures"
    )
    scaling = tiers.add_parser(
        "scaling", help="Kubernetes pods and cores of each tier, from the same figures"
    )
    compression = tiers.add_parser(
        "compression", help="SavedModel vs float16, dynamic and int8 TF Lite versions"
    )
    chosen = (argv if argv is not None else sys.argv[1:])[:1]
    if chosen == ["graph"]:
        from bench import graph as graph_bench

        graph.description = graph_bench.__doc__
        graph.formatter_class = argparse.RawDescriptionHelpFormatter
        graph_bench.add_arguments(graph)
    elif chosen == ["stack"]:
        from bench import stack as stack_bench

        stack.description = stack_bench.__doc__
        stack.formatter_class = argparse.RawDescriptionHelpFormatter
        stack_bench.add_arguments(stack)
    elif chosen == ["capacity"]:
        from bench import capacity as capacity_bench

        capacity.description = capacity_bench.__doc__
        capacity.formatter_class = argparse.RawDescriptionHelpFormatter
        capacity_bench.add_arguments(capacity)
    elif chosen == ["scaling"]:
        from bench import scaling as scaling_bench

        scaling.description = scaling_bench.__doc__
        scaling.formatter_class = argparse.RawDescriptionHelpFormatter
        scaling_bench.add_arguments(scaling)
    elif chosen == ["compression"]:
        from bench import compression as compression_bench

        compression.description = compression_bench.__doc__
        compression.formatter_class = argparse.RawDescriptionHelpFormatter
        compression_bench.add_arguments(compression)
    args = parser.parse_args(argv)
    if args.tier == "graph":
        return graph_bench.run(args)
    if args.tier == "stack":
        return stack_bench.run(args)
    if args.tier == "capacity":
        return capacity_bench.run(args)
    if args.tier == "scaling":
        return scaling_bench.run(args)
    if args.tier == "compression":
        return compression_bench.run(args)
    parser.error(f"unknown tier {args.tier}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
