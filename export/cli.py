"""The command line of ``python -m export`` (argparse): subcommands and help texts.

Kept apart from ``__main__`` so the parser can be built (and its help tested)
without importing TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

from export.manifest import DEFAULT_API_VERSION
from export.options import (
    DEFAULT_ATOL,
    DEFAULT_QUANTIZE_ATOL,
    DEFAULT_REPOSITORY,
    QUANTIZE_MODES,
)
from export.versions.arguments import HELP as _VERSIONS_HELP
from export.versions.arguments import configure as _configure_versions

PROG = "python -m export"


class ExportArgumentParser(argparse.ArgumentParser):
    """Usage mistakes read like every other error: ``error: ...``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


_Formatter = argparse.RawDescriptionHelpFormatter


_KERAS_HELP = """\
Convert a Keras model (.h5 legacy HDF5 or .keras) to a SavedModel whose
serving_default signature takes inputs named after the model's input layers
and returns outputs named after its output layers; check parity; publish.

example:
  python -m export keras .demo/model.h5 --name ctr \\
      --features .demo/ctr_features.skops --sample .demo/ctr_sample.json
  python -m export keras loan.h5 --name loan \\
      --features loan_features.skops --feature-module loan_feats.py
"""

_CHECKPOINT_HELP = """\
Build a SavedModel from a TF1 graph checkpoint (import_meta_graph + restore +
SavedModelBuilder) with a predict signature over the tensors you name.

example:
  python -m export checkpoint --meta train/model.ckpt-1000.meta \\
      --ckpt train/model.ckpt-1000 --input x=input:0 --output y=Sigmoid:0 --name legacy
"""

_SAVEDMODEL_HELP = """\
Validate an existing SavedModel (TF1 or TF2: it must load the way TF Serving
loads it and have a signature) and publish a copy with manifest and warmup.

example:
  python -m export savedmodel exported/my_model --name my_model --version 7
"""

_INSPECT_HELP = """\
List every signature of a SavedModel: method, inputs and outputs with dtype,
shape and tensor name. DIR may also be a model directory of the repository
(its highest version is shown).

example:
  python -m export inspect serving_models/ctr/1795321077
  python -m export inspect serving_models/ctr --json
"""

_CONFIG_HELP = """\
Add or update one model entry of TF Serving's models.config (ModelServerConfig
text proto); other entries are kept. The file is replaced atomically.

example:
  python -m export config --name ctr --policy latest:2 --label stable=1795321077
"""


def _common_export_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("publishing")
    group.add_argument("--name", required=True, help="model name (directory under --repo)")
    group.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help="model repository directory (default: %(default)s)",
    )
    group.add_argument(
        "--version",
        type=int,
        default=None,
        help="version number (default: the artifact's modification time, unix seconds)",
    )
    group.add_argument("--force", action="store_true", help="replace an existing version")
    group.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    features = common.add_argument_group("feature processing (read by the logic tier)")
    features.add_argument(
        "--features",
        type=Path,
        metavar="FILE",
        help="fitted feature transformer (.skops, or .pkl for pickle) to ship with the version",
    )
    features.add_argument(
        "--feature-module",
        type=Path,
        metavar="FILE.py",
        help="your feature code: its derive(record) -> derived features, INPUT_SCHEMA and "
        "EXAMPLE_REQUEST; copied into the version with its sha256, the logic tier runs that copy",
    )
    features.add_argument(
        "--feature-function",
        metavar="MODULE:ATTR",
        help="instead of --feature-module: an importable function raw record -> derived "
        "features, not copied (default: logic_service.features.NAME:derive when that "
        "module exists)",
    )
    features.add_argument(
        "--example",
        type=Path,
        metavar="FILE.json",
        help="one raw record for the end-to-end check and the manifest "
        "(default: the feature module's EXAMPLE_REQUEST)",
    )
    features.add_argument(
        "--input-schema",
        type=Path,
        metavar="FILE.json",
        help="JSON Schema of one raw record (default: the feature module's INPUT_SCHEMA)",
    )
    features.add_argument(
        "--signature-input",
        metavar="NAME",
        help="signature input that takes the transformer's output "
        "(default: the only input, or 'features')",
    )
    features.add_argument(
        "--api-version",
        default=DEFAULT_API_VERSION,
        metavar="vN",
        help="the request API (input schema version) this version accepts; the logic tier "
        "serves it at /vN/models/NAME/predict (default: %(default)s)",
    )
    checks = common.add_argument_group("parity check and warmup")
    checks.add_argument(
        "--sample",
        type=Path,
        metavar="FILE.json",
        help='TF Serving request body: {"inputs": ...} or {"instances": [...]} '
        "(default: 8 generated rows, fixed seed)",
    )
    checks.add_argument(
        "--atol",
        type=float,
        default=DEFAULT_ATOL,
        help="largest allowed absolute difference between original and export "
        "(default: %(default)g)",
    )
    _quantize_options(common)
    return common


def _quantize_options(common: argparse.ArgumentParser) -> None:
    """--quantize and its checks (export/publish/quantize.py)."""
    group = common.add_argument_group(
        "compression (a model.tflite beside the SavedModel, served by "
        "--prefer_tflite_model=true)"
    )
    group.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        metavar="MODE",
        help="float16 (float16 weights), dynamic (int8 weights) or int8 (int8 weights and "
        "activations, calibrated on --calibration or the samples)",
    )
    group.add_argument(
        "--quantize-atol",
        type=float,
        metavar="X",
        help="largest allowed absolute difference between the SavedModel and the TF Lite "
        "model on the samples (default per mode: "
        + ", ".join(f"{m} {t:g}" for m, t in DEFAULT_QUANTIZE_ATOL.items())
        + ")",
    )
    group.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE.json",
        help="rows that set int8 ranges, in --sample's layout (default: the samples)",
    )
    group.add_argument(
        "--eval",
        type=Path,
        metavar="FILE.json",
        help='labelled rows: --sample\'s layout plus "labels"; the metric delta (AUC and '
        "log loss, accuracy, or MAE) goes into the manifest",
    )
    group.add_argument(
        "--max-metric-drop",
        type=float,
        metavar="X",
        help="refuse to publish when the quantized model's metric drops by more than X on --eval",
    )


def build_parser() -> ExportArgumentParser:
    parser = ExportArgumentParser(
        prog=PROG,
        description="Export trained models to versioned SavedModel directories for TF Serving "
        "and tierkit, inspect them, and edit models.config.",
        epilog="example:\n  python -m export keras model.h5 --name ctr --features ctr.skops\n"
        "  python -m export inspect serving_models/ctr\n\n"
        "Bad input exits with status 2 and one 'error: ...' line.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_export_options()

    def add(name: str, summary: str, text: str, parents: list[argparse.ArgumentParser]) -> Any:
        return commands.add_parser(
            name,
            help=summary,
            description=text,
            parents=parents,
            formatter_class=_Formatter,
        )

    keras = add("keras", "Keras .h5/.keras -> SavedModel", _KERAS_HELP, [common])
    keras.add_argument("model", type=Path, metavar="MODEL", help="the .h5 or .keras file")

    checkpoint = add("checkpoint", "TF1 graph checkpoint -> SavedModel", _CHECKPOINT_HELP, [common])
    checkpoint.add_argument("--meta", type=Path, help="MetaGraphDef file (default: PREFIX.meta)")
    checkpoint.add_argument(
        "--ckpt",
        type=Path,
        required=True,
        metavar="PREFIX",
        help="checkpoint prefix (model.ckpt-1000) or a directory (its latest checkpoint)",
    )
    checkpoint.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=TENSOR",
        help="signature input NAME fed into graph tensor TENSOR (e.g. x=input:0); repeat",
    )
    checkpoint.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="NAME=TENSOR",
        help="signature output NAME fetched from TENSOR (e.g. y=Sigmoid:0); repeat",
    )

    savedmodel = add("savedmodel", "publish an existing SavedModel", _SAVEDMODEL_HELP, [common])
    savedmodel.add_argument("directory", type=Path, metavar="DIR", help="SavedModel directory")

    inspect = add("inspect", "show a SavedModel's signatures", _INSPECT_HELP, [])
    inspect.add_argument("directory", type=Path, metavar="DIR")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    config = add("config", "add or update a models.config entry", _CONFIG_HELP, [])
    config.add_argument("--name", required=True, help="model name")
    config.add_argument(
        "--config",
        type=Path,
        default=Path("models.config"),
        help="the ModelServerConfig file (default: %(default)s)",
    )
    config.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPOSITORY,
        help="repository for the default --base-path of a new entry (default: %(default)s)",
    )
    config.add_argument(
        "--base-path",
        help="model directory as TF Serving resolves it (relative to the server's working "
        "directory; default for a new entry: REPO/NAME)",
    )
    config.add_argument("--platform", help="model_platform (default for a new entry: tensorflow)")
    config.add_argument(
        "--policy",
        help="version policy: latest:N, all, or specific:1,2 (default for a new entry: latest:1)",
    )
    config.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="LABEL=VERSION",
        help="set a version label (e.g. stable=1795321077); repeat",
    )
    config.add_argument(
        "--remove-label", action="append", default=[], metavar="LABEL", help="drop a label; repeat"
    )

    versions = add("versions", "list, prune and roll back a model's versions", _VERSIONS_HELP, [])
    _configure_versions(versions)
    return parser
