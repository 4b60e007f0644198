"""``python -m bench schema``: the input-schema validators on the seed request, per record.

What a predict request pays to validate one record of the demo model
(``logic_service.features.ctr``: ``INPUT_SCHEMA`` and ``EXAMPLE_REQUEST``):

- ``tierkit``: ``RecordValidator`` as served (jsonschema-rs ``is_valid``, then
  ``normalize``), the valid record and one breaking two rules (listing errors);
- ``jsonschema-rs``: its ``is_valid`` alone (the floor of the above);
- ``hand-written``: the compiled-closure subset it replaced, read from git at
  ``--hand-written-rev`` (``git show``; left out, saying why, without git);
- ``jsonschema``: the pure-Python reference implementation, where installed.

Each figure is the median of ``--repeats`` runs of ``--number`` calls, in
microseconds per record, in this one process: numbers move with the machine's
load, so compare them within one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logic_service.features import ctr
from logic_service.inputs.schema import RecordValidator

ROOT = Path(__file__).resolve().parent.parent
HAND_WRITTEN_REV = "61fc6b1511e8f05e75ba4a41bb4dcc7eb1e6ae60"  # last commit with the subset
SCHEMA_PATH = "logic_service/inputs/schema.py"
INVALID = ctr.EXAMPLE_REQUEST | {"appId": -1, "screenSize": "720x1440"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--number", type=int, default=20_000, help="calls per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs; the median is shown")
    parser.add_argument(
        "--hand-written-rev",
        default=HAND_WRITTEN_REV,
        help=f"git revision whose {SCHEMA_PATH} is the hand-written validator",
    )


def _hand_written(rev: str) -> tuple[Any | None, str]:
    """The old module's RecordValidator class, or None and why not."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:{SCHEMA_PATH}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"git show {rev}:{SCHEMA_PATH} failed: {exc}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hand_written_schema.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("hand_written_schema", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.RecordValidator, ""


def _median_us(call: Callable[[], Any], number: int, repeats: int) -> float:
    runs = timeit.repeat(call, number=number, repeat=repeats)
    return statistics.median(runs) / number * 1e6


Row = tuple[str, str, float | None, str]  # validator, record, µs per record (None: not run), note


def measure(number: int, repeats: int, rev: str) -> list[Row]:
    rows: list[Row] = []

    def timed(name: str, record: str, call: Callable[[], Any], note: str, calls: int = 0) -> None:
        rows.append((name, record, _median_us(call, calls or number, repeats), note))

    kept = RecordValidator(ctr.INPUT_SCHEMA)
    assert kept.errors(ctr.EXAMPLE_REQUEST) == [] and len(kept.errors(INVALID)) == 2

    def served(record: dict[str, Any]) -> Callable[[], Any]:
        return lambda: None if kept.errors(record) else kept.normalize(record)

    timed("tierkit (jsonschema-rs)", "valid", served(ctr.EXAMPLE_REQUEST), "errors + normalize")
    timed("tierkit (jsonschema-rs)", "invalid", served(INVALID), "2 errors listed")
    import jsonschema_rs

    raw = jsonschema_rs.Draft202012Validator(ctr.INPUT_SCHEMA)
    note = f"jsonschema-rs {_version('jsonschema_rs')}"
    timed("jsonschema-rs is_valid", "valid", lambda: raw.is_valid(ctr.EXAMPLE_REQUEST), note)
    old_class, why = _hand_written(rev)
    if old_class is None:
        rows.append(("hand-written subset", "valid", None, why))
    else:
        old = old_class(ctr.INPUT_SCHEMA)
        assert old.errors(ctr.EXAMPLE_REQUEST) == [] and len(old.errors(INVALID)) == 2
        timed("hand-written subset", "valid", lambda: old.errors(ctr.EXAMPLE_REQUEST), rev[:10])
        timed("hand-written subset", "invalid", lambda: old.errors(INVALID), "2 errors listed")
    try:
        import jsonschema
    except ImportError:
        rows.append(("jsonschema (Python)", "valid", None, "not installed"))
    else:
        reference = jsonschema.Draft202012Validator(ctr.INPUT_SCHEMA)
        note = f"jsonschema {_version('jsonschema')}"
        call = lambda: reference.is_valid(ctr.EXAMPLE_REQUEST)  # noqa: E731
        timed("jsonschema (Python)", "valid", call, note, calls=max(1, number // 20))
    return rows


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package.replace("_", "-"))
    except PackageNotFoundError:
        return "?"


def run(args: argparse.Namespace) -> int:
    rows = measure(args.number, args.repeats, args.hand_written_rev)
    print(
        "input schema validation of ctr's seed request, "
        f"µs per record (median of {args.repeats} runs)"
    )
    print(f"{'validator':<26} {'record':<8} {'µs':>8}  note")
    for name, record, micros, note in rows:
        shown = f"{micros:8.2f}" if micros is not None else "       -"
        print(f"{name:<26} {record:<8} {shown}  {note}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
