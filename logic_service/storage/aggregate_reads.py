"""Windows of the prediction log read from its aggregates (``log_aggregates``), grouped in SQL.

A window ``[since, until)`` becomes the buckets that overlap it: whole
minutes from the 1-minute buckets and the partial minutes at both ends from
the 10-second buckets, so a window is exact to 10 s at either end and one
hour reads ~60 + 12 rows per key. Where the 10-second buckets are already
pruned (``fine_since``, their retention), the window is widened to whole
minutes instead. Every query is an index range on the tables' primary keys
(model, bucket width, start...).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.engine import Connection, Engine

from logic_service.storage.log_aggregates import (
    COARSE_S,
    FINE_S,
    LABEL_VALUES,
    LATENCY_COLUMNS,
    NO_VERSION,
    epoch,
    prediction_buckets,
    prediction_label_buckets,
)


def _floor(value: float, step: int) -> int:
    return math.floor(value / step) * step


def _ceil(value: float, step: int) -> int:
    return math.ceil(value / step) * step


def window_bounds(since: datetime, until: datetime, fine_since: datetime | None) -> dict[str, int]:
    """``[since, until)`` as three start ranges: whole minutes, 10-second ends (maybe empty)."""
    low, high = epoch(since), epoch(until)
    if fine_since is not None and low < epoch(fine_since):
        minutes = (_floor(low, COARSE_S), _ceil(high, COARSE_S))
        return {"m0": minutes[0], "m1": minutes[1], "a0": 0, "a1": 0, "b0": 0, "b1": 0}
    s0, s1 = _floor(low, FINE_S), _ceil(high, FINE_S)
    m0, m1 = _ceil(s0, COARSE_S), _floor(s1, COARSE_S)
    if m0 >= m1:
        return {"m0": 0, "m1": 0, "a0": s0, "a1": s1, "b0": 0, "b1": 0}
    return {"m0": m0, "m1": m1, "a0": s0, "a1": m0, "b0": m1, "b1": s1}


def _window(table: Any) -> Any:
    """The rows of ``window_bounds``' ranges; one statement shape, so it is compiled once."""
    fine = table.c.bucket_s == FINE_S
    return or_(
        and_(
            table.c.bucket_s == COARSE_S,
            table.c.start >= bindparam("m0"),
            table.c.start < bindparam("m1"),
        ),
        and_(fine, table.c.start >= bindparam("a0"), table.c.start < bindparam("a1")),
        and_(fine, table.c.start >= bindparam("b0"), table.c.start < bindparam("b1")),
    )


@dataclass
class RequestTotals:
    """One version's (or version and arm's) requests over a window."""

    requests: int = 0
    errors: int = 0  # requests answered 5xx, or 4xx by the version's fault
    records: int = 0  # records answered 2xx
    latency: list[int] = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))  # 2xx requests


@functools.cache
def _request_query() -> Any:
    table = prediction_buckets
    return (
        select(
            table.c.version,
            table.c.arm,
            table.c.status,
            func.sum(table.c.requests),
            func.sum(table.c.records),
            *(func.sum(table.c[name]) for name in LATENCY_COLUMNS),
            func.sum(table.c.faults),
        )
        .where(
            table.c.model == bindparam("model"),
            table.c.version != NO_VERSION,
            _window(table),
        )
        .group_by(table.c.version, table.c.arm, table.c.status)
    )


@functools.cache
def _label_query(by_arm: bool) -> Any:
    table = prediction_label_buckets
    groups = [table.c.version, table.c.arm] if by_arm else [table.c.version]
    return (
        select(*groups, *(func.sum(table.c[name]) for name in LABEL_VALUES))
        .where(table.c.model == bindparam("model"), _window(table))
        .group_by(*groups)
    )


def request_totals(
    connection: Connection,
    model: str,
    since: datetime,
    until: datetime,
    by_arm: bool,
    fine_since: datetime | None = None,
    arms: Collection[str] | None = None,
) -> dict[tuple[int, str | None], RequestTotals]:
    """Requests per version (and arm) over the window; ``arms``: only those routed as one."""
    totals: dict[tuple[int, str | None], RequestTotals] = {}
    bounds = window_bounds(since, until, fine_since)
    rows = connection.execute(_request_query(), {"model": model, **bounds})
    for version, arm, status, requests, records, *latency, faults in rows:
        if arms is not None and arm not in arms:
            continue
        key = (int(version), (arm or None) if by_arm else None)
        total = totals.setdefault(key, RequestTotals())
        total.requests += int(requests or 0)
        if status >= 500:
            total.errors += int(requests or 0)
        else:  # a 4xx the version caused (VERSION_FAULT_4XX) is its error too
            total.errors += int(faults or 0)
        if 200 <= status < 300:
            total.records += int(records or 0)
            for k, count in enumerate(latency):
                total.latency[k] += int(count or 0)
    return totals


def label_totals(
    connection: Connection,
    model: str,
    since: datetime,
    until: datetime,
    by_arm: bool,
    fine_since: datetime | None = None,
    arms: Collection[str] | None = None,
) -> dict[tuple[int, str | None], dict[str, float]]:
    """Sums of every label column per version (and arm) over the window; ``arms``: only
    those routed as one (read per arm, then summed per version unless ``by_arm``)."""
    totals: dict[tuple[int, str | None], dict[str, float]] = {}
    bounds = window_bounds(since, until, fine_since)
    per_arm = by_arm or arms is not None
    for row in connection.execute(_label_query(per_arm), {"model": model, **bounds}):
        values = list(row)
        version = int(values.pop(0))
        arm = values.pop(0) if per_arm else None
        if arms is not None and arm not in arms:
            continue
        sums = totals.setdefault((version, (arm or None) if by_arm else None), {})
        for name, value in zip(LABEL_VALUES, values, strict=True):
            sums[name] = sums.get(name, 0) + (value or 0)
    return totals


def request_series(
    engine: Engine, model: str, since: datetime, until: datetime
) -> list[tuple[int, int, int, int]]:
    """(start, version, requests, 5xx requests) per 10-second bucket of ``[since, until)``."""
    table = prediction_buckets
    failed = case((table.c.status >= 500, table.c.requests), else_=0)
    query = (
        select(table.c.start, table.c.version, func.sum(table.c.requests), func.sum(failed))
        .where(
            table.c.model == model,
            table.c.version != NO_VERSION,
            table.c.bucket_s == FINE_S,
            table.c.start >= _floor(epoch(since), FINE_S),
            table.c.start < _ceil(epoch(until), FINE_S),
        )
        .group_by(table.c.start, table.c.version)
    )
    with engine.connect() as connection:
        return [
            (int(start), int(version), int(requests or 0), int(errors or 0))
            for start, version, requests, errors in connection.execute(query)
        ]


def api_series(
    engine: Engine, model: str, since: datetime, until: datetime, pinned_strategy: str
) -> list[tuple[str, int | None, int, int, int]]:
    """(API, version or None, requests, pinned requests, 5xx requests) over the window."""
    table = prediction_buckets
    pinned = case((table.c.strategy == pinned_strategy, table.c.requests), else_=0)
    failed = case((table.c.status >= 500, table.c.requests), else_=0)
    query = (
        select(
            table.c.api_version,
            table.c.version,
            func.sum(table.c.requests),
            func.sum(pinned),
            func.sum(failed),
        )
        .where(table.c.model == model, _window(table))
        .group_by(table.c.api_version, table.c.version)
    )
    with engine.connect() as connection:
        rows = connection.execute(query, window_bounds(since, until, None)).all()
    return [
        (
            api,
            None if version == NO_VERSION else int(version),
            int(requests or 0),
            int(pinned_count or 0),
            int(errors or 0),
        )
        for api, version, requests, pinned_count, errors in rows
        if requests
    ]
