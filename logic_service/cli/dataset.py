"""``python -m logic_service dataset export``: a training set from the prediction log.

Reads the same settings as ``serve`` (``--config logic.yaml``, ``TIERKIT_*``)
for the database and the model repository, then writes Parquet
(``dataset/export.py``) with a progress bar on stderr. Times are ISO 8601
(``2026-12-05T10:00:00Z``, ``2026-12-05`` = midnight UTC; no zone = UTC) or
``now``. Exit codes: 0 written, 2 a bad option or configuration (the message
names it), 1 the database or a file refused.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from logic_service.settings import CONFIG_ENV, SettingsError, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROG = "logic_service dataset export"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="prediction log rows with labels -> Parquet")
    export.add_argument("--config", type=Path, help=f"logic.yaml (default: ${CONFIG_ENV})")
    export.add_argument("--model", required=True, help="the model whose predictions to export")
    export.add_argument("--since", required=True, help="first time included (ISO 8601)")
    export.add_argument("--until", default="now", help="end, excluded (ISO 8601; default now)")
    export.add_argument("--out", required=True, type=Path, help="a new folder for the Parquet")
    export.add_argument(
        "--version", type=int, action="append", default=[], help="only this version (repeatable)"
    )
    export.add_argument("--arm", action="append", default=[], help="only this arm (repeatable)")
    export.add_argument(
        "--labelled-only", action="store_true", help="only rows with a label or a reward"
    )
    export.add_argument(
        "--chunk-rows", type=int, default=10_000, help="rows read and written at a time"
    )
    export.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_time(option: str, text: str) -> datetime:
    """ISO 8601 (or ``now``) as an aware UTC datetime; a naive time is UTC."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{option}: {text!r} is not an ISO 8601 time (e.g. 2026-12-05T10:00:00Z, 2026-12-05)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    try:
        since = parse_time("--since", args.since)
        until = parse_time("--until", args.until)
        settings = load_settings(args.config)
    except (SettingsError, ValueError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    # Imported here: the other subcommands need neither pyarrow nor SQLAlchemy.
    from sqlalchemy.exc import SQLAlchemyError
    from tqdm import tqdm

    from logic_service.dataset.export import (
        ExportError,
        ExportRequest,
        check_request,
        export_dataset,
    )
    from logic_service.storage.database import create_engine
    from logic_service.storage.database_url import DatabaseConfigError

    request = ExportRequest(
        model=args.model,
        since=since,
        until=until,
        out=args.out,
        versions=tuple(args.version),
        arms=tuple(args.arm),
        labelled_only=args.labelled_only,
        chunk_rows=args.chunk_rows,
    )
    try:
        check_request(settings, request)
        storage = settings.storage
        engine = create_engine(
            storage.database_url,
            storage.busy_timeout_ms,
            password_file=storage.database_password_file,
        )
    except (ExportError, DatabaseConfigError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    bar = tqdm(unit="rows", file=sys.stderr, disable=args.quiet, desc="export", unit_scale=True)
    try:
        summary = export_dataset(
            settings,
            engine,
            request,
            progress=bar.update,
            total=lambda n: setattr(bar, "total", n),
        )
    except ExportError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (SQLAlchemyError, OSError) as exc:
        return _fail(EXIT_FAILED, f"{type(exc).__name__}: {exc}")
    finally:
        bar.close()
        engine.dispose()
    print(
        f"{request.out}: {summary.rows} rows ({summary.labelled} labelled, "
        f"{summary.with_features} with features) in {len(summary.files)} Parquet file(s)"
    )
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code
