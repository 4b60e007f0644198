"""Online evaluation of each model version from the prediction log.

``version_stats`` is what the evaluation endpoint shows and what rollout
guardrails compare (candidate against baseline over a window). Definitions,
so numbers mean the same everywhere:

- ``requests``: HTTP requests routed to the version (a ``{"records": [...]}``
  request counts once); ``errors``: those answered 5xx (the caller's 4xx
  mistakes are not the version's fault); ``error_rate`` = errors / requests,
  with a Wilson 95 % interval.
- latency percentiles: over the successful (2xx) requests, numpy's linear
  interpolation, computed in Python so every database gives the same answer.
- ``records``: records answered (2xx); ``feedback``: those with a label or a
  reward; ``coverage`` = feedback / records. The outcome of a record is its
  ``label``, else its ``reward``; ``positives`` counts outcomes >= 0.5.
- With a score (see ``prediction_log.score_of``) and outcomes that are all 0
  or 1 (binary): ``accuracy`` (score >= 0.5 predicts 1, Wilson interval),
  ``auc`` (Mann-Whitney with tied ranks averaged; Hanley-McNeil interval;
  None unless both classes occur) and ``log_loss`` (only when every score is a
  probability in [0, 1], clipped to [1e-15, 1 - 1e-15]; normal interval).
  Otherwise (regression): ``mae`` and ``rmse`` (normal interval for MAE).
- Rows without a version (failed before routing) belong to no version and are left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sqlalchemy import select
from sqlalchemy.engine import Engine

from logic_service.prediction_log import predictions, utc

Z95 = 1.959963984540054
LOG_LOSS_EPS = 1e-15
THRESHOLD = 0.5

Interval = tuple[float, float]


@dataclass(frozen=True)
class VersionStats:
    version: int
    arm: str | None
    requests: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    feedback: int
    coverage: float
    positives: int
    accuracy: float | None
    auc: float | None
    log_loss: float | None
    mae: float | None
    rmse: float | None
    records: int = 0
    labelled: int = 0  # records with an outcome and a score: the base of the quality metrics
    error_rate_ci: Interval | None = None
    accuracy_ci: Interval | None = None
    auc_ci: Interval | None = None
    log_loss_ci: Interval | None = None
    mae_ci: Interval | None = None


def wilson(successes: int, total: int, z: float = Z95) -> Interval | None:
    """Wilson score interval: stays inside [0, 1] and sane at 0 % or 100 % unlike Wald."""
    if total <= 0:
        return None
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At 0 % or 100 % the bound is exactly 0 or 1; floating point would leave a residue.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return (low, high)


def mann_whitney_auc(scores: np.ndarray, outcomes: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties counting half."""
    positives = int(outcomes.sum())
    negatives = len(outcomes) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    rank_sum = float(ranks[outcomes == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def hanley_mcneil(auc: float, positives: int, negatives: int, z: float = Z95) -> Interval:
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = z * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def _mean_interval(values: np.ndarray, z: float = Z95) -> Interval | None:
    if len(values) < 2:
        return None
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / math.sqrt(len(values))
    return (mean - half, mean + half)


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


class _Group:
    """The window's rows of one version (or version and arm), as plain lists."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.records = 0
        self.feedback = 0
        self.positives = 0
        self.scored: list[tuple[float, float]] = []  # (score, outcome)

    def add(self, row: Any) -> None:
        ok = 200 <= row.status < 300
        if row.record_index == 0:
            self.requests += 1
            if row.status >= 500:
                self.errors += 1
            if ok:
                self.latencies.append(float(row.latency_ms))
        if not ok:
            return
        self.records += 1
        outcome = row.label if row.label is not None else row.reward
        if outcome is None:
            return
        self.feedback += 1
        self.positives += outcome >= THRESHOLD
        if row.score is not None:
            self.scored.append((float(row.score), float(outcome)))

    def stats(self, version: int, arm: str | None) -> VersionStats:
        quality = _quality(self.scored)
        return VersionStats(
            version=version,
            arm=arm,
            requests=self.requests,
            errors=self.errors,
            error_rate=self.errors / self.requests if self.requests else 0.0,
            error_rate_ci=wilson(self.errors, self.requests),
            p50_ms=_percentile(self.latencies, 50),
            p95_ms=_percentile(self.latencies, 95),
            p99_ms=_percentile(self.latencies, 99),
            records=self.records,
            feedback=self.feedback,
            coverage=self.feedback / self.records if self.records else 0.0,
            positives=int(self.positives),
            labelled=len(self.scored),
            **quality,
        )


def _quality(scored: list[tuple[float, float]]) -> dict[str, Any]:
    empty: dict[str, Any] = {"accuracy": None, "auc": None, "log_loss": None, "mae": None}
    empty["rmse"] = None
    if not scored:
        return empty
    scores = np.array([s for s, _ in scored], dtype=float)
    outcomes = np.array([o for _, o in scored], dtype=float)
    result = dict(empty)
    if np.isin(outcomes, (0.0, 1.0)).all():
        labels = outcomes.astype(int)
        hits = int(((scores >= THRESHOLD).astype(int) == labels).sum())
        result["accuracy"] = hits / len(labels)
        result["accuracy_ci"] = wilson(hits, len(labels))
        auc = mann_whitney_auc(scores, labels)
        if auc is not None:
            positives = int(labels.sum())
            result["auc"] = auc
            result["auc_ci"] = hanley_mcneil(auc, positives, len(labels) - positives)
        if ((scores >= 0.0) & (scores <= 1.0)).all():
            p = np.clip(scores, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
            losses = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
            result["log_loss"] = float(losses.mean())
            result["log_loss_ci"] = _mean_interval(losses)
        return result
    errors = scores - outcomes
    result["mae"] = float(np.abs(errors).mean())
    result["mae_ci"] = _mean_interval(np.abs(errors))
    result["rmse"] = float(math.sqrt(float((errors**2).mean())))
    return result


def version_stats(
    engine: Engine,
    model: str,
    since: datetime,
    until: datetime | None = None,
    by_arm: bool = False,
) -> list[VersionStats]:
    """Stats of each version of ``model`` over ``[since, until)``, sorted by version (and arm).

    Only the columns the numbers need are read (never the inputs or outputs).
    """
    table = predictions
    query = select(
        table.c.version,
        table.c.arm,
        table.c.record_index,
        table.c.status,
        table.c.latency_ms,
        table.c.score,
        table.c.label,
        table.c.reward,
    ).where(
        table.c.model == model,
        table.c.version.is_not(None),
        table.c.ts >= utc(since),
    )
    if until is not None:
        query = query.where(table.c.ts < utc(until))
    groups: dict[tuple[int, str | None], _Group] = defaultdict(_Group)
    with engine.connect() as connection:
        for row in connection.execute(query):
            key = (int(row.version), row.arm if by_arm else None)
            groups[key].add(row)
    return [
        groups[key].stats(*key)
        for key in sorted(groups, key=lambda k: (k[0], k[1] is not None, k[1] or ""))
    ]


def now() -> datetime:
    return datetime.now(UTC)
