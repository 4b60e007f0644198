"""``python -m graph_service`` / ``tierkit-graph``: a drop-in for tensorflow_model_server."""

from __future__ import annotations

import os
import sys

from graph_service.flags import FlagError, parse_flags, usage


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("--help", "-h", "--helpfull") for a in args):
        print(usage())
        return 0
    try:
        options = parse_flags(args)
    except FlagError as exc:
        print(f"ERROR: {exc}\nRun with --help to list the flags.", file=sys.stderr)
        return 1
    if options.version:
        from importlib.metadata import version

        print(f"TensorFlow ModelServer: tierkit graph_service {version('tierkit')}")
        print(f"TensorFlow Library: {version('tensorflow-cpu')}")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from graph_service.server import run

    return run(options)


if __name__ == "__main__":
    sys.exit(main())
