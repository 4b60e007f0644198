"""``dataset export``: a time range of the prediction log as Parquet, for retraining.

Rows are read by primary key in chunks (``WHERE id > last ... LIMIT n``), each
its own short query, so memory stays bounded by ``chunk_rows`` whatever the
range and no long transaction holds SQLite's checkpoint or PostgreSQL's
vacuum back. Each chunk becomes one row group of the current part file
(``part-00000.parquet``...; a new part every ``rows_per_file`` rows). The
folder is written as ``.<out>.tmp-<pid>`` beside ``out`` and renamed into
place at the end: a reader never sees a half-written set, and an error or an
interrupt removes the temporary folder, leaving nothing behind.

Columns: see ``SCHEMA`` (and docs/dataset.md). The features are recomputed
with each row's own version (``features.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from logic_service.dataset.features import FeatureReplayer
from logic_service.settings import LogicSettings
from logic_service.storage.prediction_log import predictions, utc

SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("record_index", pa.int32(), nullable=False),
        pa.field("batch_size", pa.int32(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("version", pa.int64()),
        pa.field("arm", pa.string()),
        pa.field("strategy", pa.string()),
        pa.field("api_version", pa.string()),
        pa.field("status", pa.int32(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("record", pa.string()),  # the raw record as JSON, as the caller sent it
        pa.field("derived_features", pa.string()),  # JSON of the feature function's output
        pa.field("features", pa.list_(pa.float32())),  # the graph's input row
        pa.field("features_note", pa.string()),  # why features are null, when they are
        pa.field("output", pa.string()),  # the record's prediction as JSON
        pa.field("score", pa.float64()),
        pa.field("label", pa.float64()),
        pa.field("reward", pa.float64()),
        pa.field("feedback_at", pa.timestamp("us", tz="UTC")),
        pa.field("feedback_updates", pa.int32(), nullable=False),
    ]
)


class ExportError(ValueError):
    """A request that cannot be exported; the message names the option and the rule."""


@dataclass(frozen=True)
class ExportRequest:
    model: str
    since: datetime
    until: datetime
    out: Path
    versions: tuple[int, ...] = ()
    arms: tuple[str, ...] = ()
    labelled_only: bool = False
    chunk_rows: int = 10_000
    rows_per_file: int = 1_000_000


@dataclass
class ExportSummary:
    rows: int = 0
    labelled: int = 0
    with_features: int = 0
    files: list[str] = field(default_factory=list)


def check_request(settings: LogicSettings, request: ExportRequest) -> None:
    """Refuse before anything is read or written."""
    names = settings.model_names()
    if request.model not in names:
        raise ExportError(
            f"--model: unknown model {request.model!r}; configured: {', '.join(names) or 'none'}"
        )
    if utc(request.since) >= utc(request.until):
        raise ExportError(
            f"--since ({utc(request.since).isoformat()}) must be before --until "
            f"({utc(request.until).isoformat()})"
        )
    if request.out.exists():
        raise ExportError(f"--out: {request.out} exists; name a new folder (nothing is replaced)")
    if request.chunk_rows < 1 or request.rows_per_file < 1:
        raise ExportError("--chunk-rows: must be at least 1")


def export_dataset(
    settings: LogicSettings,
    engine: Engine,
    request: ExportRequest,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the rows ``request`` selects to ``request.out``; ``progress(n)`` per chunk."""
    check_request(settings, request)
    out = request.out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if total is not None:
            total(count_rows(engine, request))
        summary = _write(settings, engine, request, staging, progress)
        (staging / "_export.json").write_text(
            json.dumps(_description(request, summary), indent=2) + "\n", encoding="utf-8"
        )
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _where(request: ExportRequest) -> list[Any]:
    c = predictions.c
    clauses = [c.model == request.model, c.ts >= utc(request.since), c.ts < utc(request.until)]
    if request.versions:
        clauses.append(c.version.in_(request.versions))
    if request.arms:
        clauses.append(c.arm.in_(request.arms))
    if request.labelled_only:
        clauses.append(sa.or_(c.label.is_not(None), c.reward.is_not(None)))
    return clauses


def count_rows(engine: Engine, request: ExportRequest) -> int:
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(predictions).where(*_where(request))
        return int(connection.execute(query).scalar_one())


def _chunks(engine: Engine, request: ExportRequest) -> Iterator[list[Any]]:
    last = 0
    query = sa.select(predictions).where(*_where(request)).order_by(predictions.c.id)
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                query.where(predictions.c.id > last).limit(request.chunk_rows)
            ).all()
        if not rows:
            return
        last = rows[-1].id
        yield rows


def _write(
    settings: LogicSettings,
    engine: Engine,
    request: ExportRequest,
    folder: Path,
    progress: Callable[[int], None] | None,
) -> ExportSummary:
    replayer = FeatureReplayer(settings, request.model)
    summary = ExportSummary()
    writer: pq.ParquetWriter | None = None
    in_file = 0
    try:
        for rows in _chunks(engine, request):
            table = _table(rows, replayer, summary)
            if writer is None or in_file >= request.rows_per_file:
                if writer is not None:
                    writer.close()
                name = f"part-{len(summary.files):05d}.parquet"
                writer = pq.ParquetWriter(folder / name, SCHEMA, compression="zstd")
                summary.files.append(name)
                in_file = 0
            writer.write_table(table)
            in_file += len(rows)
            summary.rows += len(rows)
            if progress is not None:
                progress(len(rows))
        if writer is None:  # nothing matched: still a readable, empty set
            pq.write_table(SCHEMA.empty_table(), folder / "part-00000.parquet")
            summary.files.append("part-00000.parquet")
    finally:
        if writer is not None:
            writer.close()
    return summary


def _table(rows: list[Any], replayer: FeatureReplayer, summary: ExportSummary) -> pa.Table:
    features: list[Any] = [None] * len(rows)
    by_version: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        if row.status == 200 and row.version is not None and row.input is not None:
            by_version.setdefault(row.version, []).append(i)
        else:
            features[i] = (None, None, "the request failed: no features were computed")
    for version, positions in by_version.items():
        records = [json.loads(rows[i].input) for i in positions]
        # the request's arrival: the feature function ran between it and ts
        moments = [utc(rows[i].ts) - timedelta(milliseconds=rows[i].latency_ms) for i in positions]
        for i, done in zip(positions, replayer.recompute(version, records, moments), strict=True):
            features[i] = (done.derived, done.vector, done.problem)
    summary.with_features += sum(1 for f in features if f[1] is not None)
    summary.labelled += sum(1 for r in rows if r.label is not None or r.reward is not None)
    columns = {
        "request_id": [r.request_id for r in rows],
        "record_index": [r.record_index for r in rows],
        "batch_size": [r.batch_size for r in rows],
        "ts": [utc(r.ts) for r in rows],
        "model": [r.model for r in rows],
        "version": [r.version for r in rows],
        "arm": [r.arm for r in rows],
        "strategy": [r.strategy for r in rows],
        "api_version": [r.api_version for r in rows],
        "status": [r.status for r in rows],
        "error": [r.error for r in rows],
        "latency_ms": [r.latency_ms for r in rows],
        "record": [r.input for r in rows],
        "derived_features": [f[0] for f in features],
        "features": [f[1] for f in features],
        "features_note": [f[2] for f in features],
        "output": [r.output for r in rows],
        "score": [r.score for r in rows],
        "label": [r.label for r in rows],
        "reward": [r.reward for r in rows],
        "feedback_at": [utc(r.feedback_at) if r.feedback_at is not None else None for r in rows],
        "feedback_updates": [r.feedback_updates for r in rows],
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _description(request: ExportRequest, summary: ExportSummary) -> dict[str, Any]:
    return {
        "model": request.model,
        "since": utc(request.since).isoformat(),
        "until": utc(request.until).isoformat(),
        "versions": list(request.versions),
        "arms": list(request.arms),
        "labelled_only": request.labelled_only,
        "rows": summary.rows,
        "labelled_rows": summary.labelled,
        "rows_with_features": summary.with_features,
        "features": "recomputed with each row's version's own feature pipeline",
        "files": summary.files,
        "exported_at": datetime.now(UTC).isoformat(),
    }
