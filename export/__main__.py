"""``python -m export`` / ``tierkit-export``: parse, dispatch, turn bad input into ``error:``.

TensorFlow is imported only after the arguments parsed, so ``--help`` and
usage errors answer at once. Every ``ExportError`` becomes one line on stderr
and exit status 2; the published path (or the inspection) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from export.cli import build_parser
from export.errors import ExportError
from export.options import ExportOptions, check_model_name
from export.progress import Progress

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2


def _quiet_tensorflow() -> None:
    """TensorFlow's C++ and Python INFO/WARNING chatter would bury the progress lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import absl.logging
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    absl.logging.set_verbosity(absl.logging.ERROR)


def _options(args: argparse.Namespace) -> ExportOptions:
    return ExportOptions(
        name=args.name,
        repo=args.repo,
        version=args.version,
        force=args.force,
        features=args.features,
        feature_function=args.feature_function,
        feature_module=args.feature_module,
        example=args.example,
        input_schema=args.input_schema,
        signature_input=args.signature_input,
        api_version=args.api_version,
        sample=args.sample,
        atol=args.atol,
        quiet=args.quiet,
        quantize=args.quantize,
        quantize_atol=args.quantize_atol,
        calibration=args.calibration,
        eval=args.eval,
        max_metric_drop=args.max_metric_drop,
    )


def _export(args: argparse.Namespace) -> int:
    options = _options(args)
    progress = Progress(quiet=options.quiet)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from export.sources.model_source import ModelSource

    source: ModelSource
    if args.command == "keras":
        from export.sources.keras_source import KerasSource

        source = KerasSource(args.model)  # checks the file before the slow TensorFlow import
    progress.step("starting TensorFlow")
    _quiet_tensorflow()
    if args.command == "checkpoint":
        from export.sources.checkpoint_source import CheckpointSource, parse_tensor_map

        inputs = parse_tensor_map(args.input, "--input")
        outputs = parse_tensor_map(args.output, "--output")
        source = CheckpointSource(args.meta, args.ckpt, inputs, outputs)
    elif args.command == "savedmodel":
        from export.sources.savedmodel_source import SavedModelSource

        source = SavedModelSource(args.directory)
    from export.pipeline import run_export

    published = run_export(source, options, progress)
    print(f"published {options.name} version {published.name} to {published}")
    return EXIT_OK


def _latest_version(directory: Path) -> Path:
    """A model directory of the repository stands for its highest version."""
    if (directory / "saved_model.pb").exists() or (directory / "saved_model.pbtxt").exists():
        return directory
    if directory.is_dir():
        versions = [p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()]
        if versions:
            return max(versions, key=lambda p: int(p.name))
    return directory


def _inspect(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from export.checks.signatures import describe_saved_model, render_text

    description = describe_saved_model(_latest_version(args.directory))
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        print(render_text(description))
    return EXIT_OK


def _config(args: argparse.Namespace) -> int:
    from export.model_config import (
        ModelEntryChange,
        apply_change,
        parse_labels,
        read_config,
        render_entry,
        write_config,
    )

    name = check_model_name(args.name)
    change = ModelEntryChange(
        name=name,
        base_path=args.base_path,
        platform=args.platform,
        policy=args.policy,
        labels=parse_labels(args.label),
        remove_labels=tuple(args.remove_label),
    )
    config = read_config(args.config)
    before = config.SerializeToString(deterministic=True)
    entry, created = apply_change(config, change, default_base=(args.repo / name).as_posix())
    if created or config.SerializeToString(deterministic=True) != before:
        write_config(args.config, config)
        outcome = "added" if created else "updated"
    else:
        outcome = "unchanged"  # leave the file (and its comments) alone
    print(f"{outcome} model {name!r} in {args.config}:")
    print(render_entry(entry))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "inspect":
            return _inspect(args)
        if args.command == "config":
            return _config(args)
        if args.command == "versions":
            from export.versions.command import run as run_versions

            return run_versions(args)
        return _export(args)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen TensorFlow failure: still no traceback
        print(
            f"error: internal error ({type(exc).__name__}): {str(exc).rstrip('.')}. "
            "Please report it with the command line you ran.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
