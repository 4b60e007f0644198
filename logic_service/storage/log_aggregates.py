"""The prediction log summed per time bucket, so reads cost O(buckets), not O(rows).

Two tables, both written by upsert-increments (``INSERT ... ON CONFLICT DO
UPDATE SET n = n + excluded.n``, the same statement on SQLite and PostgreSQL),
so any number of writers (workers, replicas) may add to the same bucket:

- ``prediction_buckets``: per model, bucket (10 s and 1 min), version, arm,
  request API, strategy and HTTP status: ``requests`` (rows of record index 0,
  one per HTTP request), ``records`` (rows) and a latency histogram of the
  requests (``lat_00``..``lat_72``). Written in the writer's flush
  transaction, for exactly the rows that transaction inserted.
- ``prediction_label_buckets``: per model, bucket, version and arm, the
  outcomes of answered (2xx) records: counts, accuracy hits, sums for log loss,
  MAE and RMSE, and a score histogram of binary outcomes for AUC
  (``pos_000``..``neg_127``). Feedback arrives later: it adds the difference
  between the new and the old outcome to the bucket of the *prediction's* time,
  in the transaction that stores it.

Histograms, and what they cost in precision (docs/prediction_log.md):

- latency: bin k >= 1 holds [e(k-1), e(k)) ms with e(k) = 0.25 * 2^(k/4);
  bin 0 holds < 0.25 ms, bin 72 >= ~55 s. A percentile is interpolated inside
  its bin, so it is within a factor 2^(1/4) (19 %) of the exact one.
- score: 128 bins of width 0.125 in logit space over [-8, 8] (scores <= 0 in
  the first, >= 1 in the last). AUC counts pairs in the same bin as ties (one
  half); it is off from the exact Mann-Whitney AUC by at most
  ``0.5 * sum(pos_b * neg_b) / (P * N)``, which ``evaluation`` reports as
  ``auc_max_error``.

Missing values are stored as sentinels (version -1, empty arm, API and
strategy) because a NULL never conflicts in a unique key.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Integer, SmallInteger, String, Table
from sqlalchemy.engine import Connection

from logic_service.storage.database import metadata

RESOLUTIONS = (10, 60)  # bucket widths in seconds: the dashboard's and the long windows'
FINE_S, COARSE_S = RESOLUTIONS
NO_VERSION = -1
THRESHOLD = 0.5
LOG_LOSS_EPS = 1e-15
# A 4xx that is the version's fault, not the caller's: it could not score a valid record
# (prediction/runner.py). Counted in ``faults``; evaluation counts it as an error.
VERSION_FAULT_4XX = "non_finite_output"

LATENCY_EDGES = tuple(0.25 * 2 ** (k / 4) for k in range(72))  # ms; 73 bins
LATENCY_COLUMNS = tuple(f"lat_{k:02d}" for k in range(len(LATENCY_EDGES) + 1))
SCORE_BINS = 128
LOGIT_LOW, LOGIT_HIGH = -8.0, 8.0
LOGIT_WIDTH = (LOGIT_HIGH - LOGIT_LOW) / SCORE_BINS
POS_COLUMNS = tuple(f"pos_{k:03d}" for k in range(SCORE_BINS))
NEG_COLUMNS = tuple(f"neg_{k:03d}" for k in range(SCORE_BINS))
# float sums of the outcomes; the rest of the label columns are integer counts
LABEL_SUMS = ("loss_sum", "loss_sq_sum", "abs_err_sum", "sq_err_sum")
LABEL_COUNTS = ("feedback", "positives", "scored", "nonbinary", "out_of_range", "hits")

REQUEST_KEY = ("model", "bucket_s", "start", "version", "arm", "api_version", "strategy", "status")
LABEL_KEY = ("model", "bucket_s", "start", "version", "arm")

prediction_buckets = Table(
    "prediction_buckets",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("bucket_s", SmallInteger, primary_key=True),
    Column("start", BigInteger, primary_key=True),  # unix seconds, a multiple of bucket_s
    Column("version", BigInteger, primary_key=True),  # -1: failed before a version was chosen
    Column("arm", String(128), primary_key=True),
    Column("api_version", String(16), primary_key=True),
    Column("strategy", String(64), primary_key=True),
    Column("status", Integer, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("records", BigInteger, nullable=False),
    *(Column(name, Integer, nullable=False) for name in LATENCY_COLUMNS),
    Column("faults", BigInteger, nullable=False),  # requests of VERSION_FAULT_4XX
)

prediction_label_buckets = Table(
    "prediction_label_buckets",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("bucket_s", SmallInteger, primary_key=True),
    Column("start", BigInteger, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("arm", String(128), primary_key=True),
    *(Column(name, BigInteger, nullable=False) for name in LABEL_COUNTS),
    *(Column(name, Float, nullable=False) for name in LABEL_SUMS),
    *(Column(name, Integer, nullable=False) for name in POS_COLUMNS + NEG_COLUMNS),
)

REQUEST_VALUES = ("requests", "records", *LATENCY_COLUMNS, "faults")
LABEL_VALUES = (*LABEL_COUNTS, *LABEL_SUMS, *POS_COLUMNS, *NEG_COLUMNS)


def latency_bin(latency_ms: float) -> int:
    return bisect.bisect_right(LATENCY_EDGES, latency_ms)


def latency_bounds(k: int) -> tuple[float, float]:
    """The bin's [low, high) in ms; the last bin's high is its low (nothing above is known)."""
    low = 0.0 if k == 0 else LATENCY_EDGES[k - 1]
    high = LATENCY_EDGES[k] if k < len(LATENCY_EDGES) else low
    return low, high


def score_bin(score: float) -> int:
    if score <= 0.0:
        return 0
    if score >= 1.0:
        return SCORE_BINS - 1
    logit = math.log(score / (1.0 - score))
    return min(SCORE_BINS - 1, max(0, int((logit - LOGIT_LOW) // LOGIT_WIDTH)))


def epoch(ts: datetime | float) -> float:
    if isinstance(ts, datetime):  # naive: UTC (SQLite hands datetimes back naive)
        return (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)).timestamp()
    return float(ts)


def bucket_starts(ts: datetime | float) -> list[tuple[int, int]]:
    """(bucket_s, start) of each resolution for one moment."""
    moment = epoch(ts)
    return [(width, int(moment // width) * width) for width in RESOLUTIONS]


def outcome_of(row: Mapping[str, Any]) -> float | None:
    """The label, else the reward: what evaluation compares the score with."""
    label = row.get("label")
    return label if label is not None else row.get("reward")


def label_contribution(score: float | None, outcome: float) -> dict[str, float]:
    """What one answered record with this outcome adds to its label bucket (sparse)."""
    add: dict[str, float] = {"feedback": 1, "positives": int(outcome >= THRESHOLD)}
    if score is None:
        return add
    add["scored"] = 1
    error = score - outcome
    add["abs_err_sum"] = abs(error)
    add["sq_err_sum"] = error * error
    if outcome not in (0.0, 1.0):
        add["nonbinary"] = 1
        return add
    label = int(outcome)
    add["hits"] = int((score >= THRESHOLD) == bool(label))
    add[(POS_COLUMNS if label else NEG_COLUMNS)[score_bin(score)]] = 1
    if 0.0 <= score <= 1.0:
        p = min(max(score, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS)
        loss = -math.log(p) if label else -math.log(1 - p)
        add["loss_sum"] = loss
        add["loss_sq_sum"] = loss * loss
    else:
        add["out_of_range"] = 1
    return add


def counts_label(row: Mapping[str, Any]) -> bool:
    """Only answered records of a chosen version are evaluated (see ``evaluation``)."""
    return row.get("version") is not None and 200 <= int(row["status"]) < 300


def request_key(row: Mapping[str, Any], width: int, start: int) -> tuple:
    version = row.get("version")
    return (
        row["model"],
        width,
        start,
        NO_VERSION if version is None else int(version),
        row.get("arm") or "",
        row.get("api_version") or "",
        row.get("strategy") or "",
        int(row["status"]),
    )


def label_key(row: Mapping[str, Any], width: int, start: int) -> tuple:
    return (row["model"], width, start, int(row["version"]), row.get("arm") or "")


class Deltas:
    """Increments per bucket key, summed in memory before one upsert per key."""

    def __init__(self) -> None:
        self.requests: dict[tuple, list[int]] = {}
        self.labels: dict[tuple, dict[str, float]] = {}

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> Deltas:
        """Rows as inserted into ``predictions`` (an outcome already set counts too)."""
        for row in rows:
            first = int(row.get("record_index") or 0) == 0
            latency = 2 + latency_bin(float(row["latency_ms"])) if first else -1
            outcome = outcome_of(row) if counts_label(row) else None
            for width, start in bucket_starts(row["ts"]):
                key = request_key(row, width, start)
                counters = self.requests.get(key)
                if counters is None:
                    counters = self.requests[key] = [0] * len(REQUEST_VALUES)
                counters[0] += first
                counters[1] += 1
                if latency >= 0:
                    counters[latency] += 1
                if first and row.get("error") == VERSION_FAULT_4XX:
                    counters[-1] += 1
                if outcome is not None:
                    self.add_label(label_key(row, width, start), row.get("score"), outcome, 1)
        return self

    def add_label(self, key: tuple, score: float | None, outcome: float, sign: int) -> None:
        sums = self.labels.setdefault(key, {})
        for name, value in label_contribution(score, outcome).items():
            sums[name] = sums.get(name, 0) + sign * value

    def request_rows(self) -> list[dict[str, Any]]:
        return [
            dict(zip(REQUEST_KEY, key, strict=True))
            | dict(zip(REQUEST_VALUES, values, strict=True))
            for key, values in sorted(self.requests.items())  # one lock order: no deadlock
        ]

    def label_rows(self) -> list[dict[str, Any]]:
        rows = []
        for key, sums in sorted(self.labels.items()):
            values = {name: sums.get(name, 0) for name in LABEL_VALUES}
            rows.append(dict(zip(LABEL_KEY, key, strict=True)) | values)
        return rows

    def write(self, connection: Connection) -> None:
        """Upsert-increment every key, in the caller's transaction."""
        dialect = connection.dialect.name
        requests, labels = self.request_rows(), self.label_rows()
        if requests:
            connection.execute(_upsert(dialect, "prediction_buckets"), requests)
        if labels:
            connection.execute(_upsert(dialect, "prediction_label_buckets"), labels)


def add_rows(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """The aggregates of rows just inserted into ``predictions``, in that transaction."""
    Deltas().add_rows(rows).write(connection)


def move_outcome(
    connection: Connection,
    row: Mapping[str, Any],
    old: float | None,
    new: float | None,
) -> None:
    """Feedback changed a record's outcome from ``old`` to ``new``: move its label stats."""
    if not counts_label(row) or old == new:
        return
    deltas = Deltas()
    for width, start in bucket_starts(row["ts"]):
        key = label_key(row, width, start)
        if old is not None:
            deltas.add_label(key, row.get("score"), old, -1)
        if new is not None:
            deltas.add_label(key, row.get("score"), new, 1)
    deltas.write(connection)


@functools.cache
def _upsert(dialect: str, table_name: str) -> Any:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET v = v + excluded.v`` for each value column."""
    table, key, values = {
        "prediction_buckets": (prediction_buckets, REQUEST_KEY, REQUEST_VALUES),
        "prediction_label_buckets": (prediction_label_buckets, LABEL_KEY, LABEL_VALUES),
    }[table_name]
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise NotImplementedError(
            f"prediction log aggregates need SQLite or PostgreSQL, not {dialect}"
        )
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: table.c[name] + statement.excluded[name] for name in values},
    )
