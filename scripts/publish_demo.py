#!/usr/bin/env python
"""Publish the demo CTR model into the model repository (idempotent).

Trains it into .demo/ first when the artifacts are missing, exports
``.demo/model.h5`` with its feature transformer and parity sample via
``python -m export keras``, and makes sure models.config has a ``ctr`` entry.
Running it again publishes nothing new: the version is the model file's
modification time, and an existing version is left alone.
``./scripts/up`` calls it when serving_models/ holds no model. Paths are
relative to the working directory, as TF Serving resolves them; run it from
the repository root.

Usage: python scripts/publish_demo.py [--repo serving_models] [--config models.config]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
MODEL_NAME = "ctr"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train (if needed) and publish the demo model 'ctr'.",
        epilog="example: python scripts/publish_demo.py --repo serving_models",
    )
    parser.add_argument("--repo", type=Path, default=Path("serving_models"))
    parser.add_argument("--config", type=Path, default=Path("models.config"))
    parser.add_argument("--demo-dir", type=Path, default=Path(".demo"), help="training output")
    parser.add_argument("--rows", type=int, default=20_000, help="rows when training is needed")
    parser.add_argument("--quiet", action="store_true", help="no export progress lines")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    model = args.demo_dir / "model.h5"
    features = args.demo_dir / "ctr_features.skops"
    sample = args.demo_dir / "ctr_sample.json"
    if not all(path.is_file() for path in (model, features, sample)):
        print(f"[publish_demo] no trained demo in {args.demo_dir}: training it", flush=True)
        sys.path.insert(0, str(SCRIPTS))
        from train_demo import train

        train(args.demo_dir, args.rows, seed=7)

    from export.__main__ import main as export_main

    version = int(model.stat().st_mtime)
    published = args.repo / MODEL_NAME / str(version)
    if (published / "saved_model.pb").is_file():
        print(f"[publish_demo] {published} is already published", flush=True)
    else:
        command = [
            "keras",
            str(model),
            "--name",
            MODEL_NAME,
            "--features",
            str(features),
            "--sample",
            str(sample),
            "--repo",
            str(args.repo),
            "--version",
            str(version),
        ]
        if args.quiet:
            command.append("--quiet")
        status = export_main(command)
        if status != 0:
            return status
    # Adds the entry when missing; an existing entry is kept exactly as it is.
    return export_main(
        ["config", "--name", MODEL_NAME, "--config", str(args.config), "--repo", str(args.repo)]
    )


if __name__ == "__main__":
    sys.exit(main())
