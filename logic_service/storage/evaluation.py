"""Online evaluation of each model version from the prediction log.

``version_stats`` is what the evaluation endpoint shows and what rollout
guardrails compare (candidate against baseline over a window). Definitions,
so numbers mean the same everywhere:

- ``requests``: HTTP requests routed to the version (a ``{"records": [...]}``
  request counts once); ``errors``: those answered 5xx, and 422
  ``non_finite_output`` (the version could not score a valid record; the
  caller's other 4xx mistakes are not the version's fault); ``error_rate`` = errors / requests,
  with a Wilson 95 % interval.
- latency percentiles: over the successful (2xx) requests, numpy's linear
  interpolation located in the aggregates' latency histogram: within a factor
  2^(1/4) (19 %) of the exact percentile, the same on every database.
- ``records``: records answered (2xx); ``feedback``: those with a label or a
  reward; ``coverage`` = feedback / records. The outcome of a record is its
  ``label``, else its ``reward``; ``positives`` counts outcomes >= 0.5.
- With a score (see ``logic_service/scores.py``) and outcomes that are all 0
  or 1 (binary): ``accuracy`` (score >= 0.5 predicts 1, Wilson interval),
  ``auc`` (Mann-Whitney over 128 score bins, a bin's pairs counted as ties;
  ``auc_max_error`` bounds its distance to the exact AUC; Hanley-McNeil
  interval; None unless both classes occur) and ``log_loss`` (only when every score is a
  probability in [0, 1], clipped to [1e-15, 1 - 1e-15]; normal interval).
  Otherwise (regression): ``mae`` and ``rmse`` (normal interval for MAE).
- Rows without a version (failed before routing) belong to no version and are left out.

Everything is read from the log's aggregates (``log_aggregates``,
``aggregate_reads``), never row by row: a window is exact to its 10-second
buckets at both ends.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from logic_service.storage.aggregate_reads import RequestTotals, label_totals, request_totals
from logic_service.storage.log_aggregates import NEG_COLUMNS, POS_COLUMNS, latency_bounds

Z95 = 1.959963984540054

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
    auc_max_error: float | None = None  # AUC from score bins: at most this far from the exact one


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


def hanley_mcneil(auc: float, positives: int, negatives: int, z: float = Z95) -> Interval:
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = z * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def _sum_interval(total: float, squares: float, n: int, z: float = Z95) -> Interval | None:
    """Normal interval of a mean known only by its sum and sum of squares (ddof 1)."""
    if n < 2:
        return None
    mean = total / n
    variance = max(squares - n * mean * mean, 0.0) / (n - 1)
    half = z * math.sqrt(variance) / math.sqrt(n)
    return (mean - half, mean + half)


def histogram_percentile(counts: list[int], q: float) -> float | None:
    """numpy's linear percentile, its rank located in a latency bin and interpolated inside.

    Within the bin the values are taken as spread evenly on a log scale (the
    bins are), so the answer stays inside the bin that holds the exact one.
    """
    n = sum(counts)
    if n == 0:
        return None
    rank = (n - 1) * q / 100.0  # 0-based, as numpy's default method

    def value_at(index: int) -> float:
        seen = 0
        for k, count in enumerate(counts):
            if count and index < seen + count:
                low, high = latency_bounds(k)
                share = (index - seen + 0.5) / count
                if low <= 0.0 or high <= low:
                    return low + (high - low) * share
                return low * (high / low) ** share
            seen += count
        return latency_bounds(len(counts) - 1)[0]

    below = math.floor(rank)
    fraction = rank - below
    value = value_at(below)
    if fraction > 0:
        value += fraction * (value_at(below + 1) - value)
    return value


def histogram_auc(positive: list[int], negative: list[int]) -> tuple[float, float] | None:
    """AUC over score bins (same bin = tie) and the most it can be off from the exact AUC."""
    p, n = sum(positive), sum(negative)
    if p == 0 or n == 0:
        return None
    wins, ties, below = 0.0, 0.0, 0
    for pos, neg in zip(positive, negative, strict=True):
        wins += pos * below
        ties += pos * neg
        below += neg
    pairs = float(p) * float(n)
    return (wins + 0.5 * ties) / pairs, 0.5 * ties / pairs


def _quality(sums: dict[str, float] | None) -> dict[str, Any]:
    """Accuracy, AUC, log loss (binary outcomes) or MAE, RMSE (others) from a label bucket sum."""
    result: dict[str, Any] = {"accuracy": None, "auc": None, "log_loss": None, "mae": None}
    result["rmse"] = None
    scored = int(sums["scored"]) if sums else 0
    if sums is None or scored == 0:
        return result
    if int(sums["nonbinary"]) == 0:
        hits = int(sums["hits"])
        result["accuracy"] = hits / scored
        result["accuracy_ci"] = wilson(hits, scored)
        positive = [int(sums[name]) for name in POS_COLUMNS]
        negative = [int(sums[name]) for name in NEG_COLUMNS]
        found = histogram_auc(positive, negative)
        if found is not None:
            auc, bound = found
            result["auc"], result["auc_max_error"] = auc, bound
            result["auc_ci"] = hanley_mcneil(auc, sum(positive), sum(negative))
        if int(sums["out_of_range"]) == 0:
            result["log_loss"] = sums["loss_sum"] / scored
            result["log_loss_ci"] = _sum_interval(sums["loss_sum"], sums["loss_sq_sum"], scored)
        return result
    result["mae"] = sums["abs_err_sum"] / scored
    result["mae_ci"] = _sum_interval(sums["abs_err_sum"], sums["sq_err_sum"], scored)
    result["rmse"] = math.sqrt(max(sums["sq_err_sum"], 0.0) / scored)
    return result


def _stats(
    version: int, arm: str | None, requests: RequestTotals, labels: dict[str, float] | None
) -> VersionStats:
    feedback = int(labels["feedback"]) if labels else 0
    return VersionStats(
        version=version,
        arm=arm,
        requests=requests.requests,
        errors=requests.errors,
        error_rate=requests.errors / requests.requests if requests.requests else 0.0,
        error_rate_ci=wilson(requests.errors, requests.requests),
        p50_ms=histogram_percentile(requests.latency, 50),
        p95_ms=histogram_percentile(requests.latency, 95),
        p99_ms=histogram_percentile(requests.latency, 99),
        records=requests.records,
        feedback=feedback,
        coverage=feedback / requests.records if requests.records else 0.0,
        positives=int(labels["positives"]) if labels else 0,
        labelled=int(labels["scored"]) if labels else 0,
        **_quality(labels),
    )


def version_stats(
    engine: Engine,
    model: str,
    since: datetime,
    until: datetime | None = None,
    by_arm: bool = False,
    fine_since: datetime | None = None,
    arms: Collection[str] | None = None,
) -> list[VersionStats]:
    """Stats of each version of ``model`` over ``[since, until)``, sorted by version (and arm).

    Read from the log's aggregates (``aggregate_reads``): the cost grows with
    the number of time buckets in the window, not with the traffic.
    ``fine_since``: where the 10-second buckets begin (their retention).
    ``arms``: count only requests routed as one of these arms. A window starts
    at its bucket's start, so a canary stage's stats would otherwise take in
    up to a bucket of the candidate's traffic from before the canary (when it
    served everything as ``stable``: its cold start after publishing).
    """
    until = until if until is not None else now()
    with engine.connect() as connection:  # two statements, compiled once (aggregate_reads)
        requests = request_totals(connection, model, since, until, by_arm, fine_since, arms)
        labels = label_totals(connection, model, since, until, by_arm, fine_since, arms)
    keys = set(requests) | set(labels)
    return [
        _stats(*key, requests.get(key, RequestTotals()), labels.get(key))
        for key in sorted(keys, key=lambda k: (k[0], k[1] is not None, k[1] or ""))
    ]


def now() -> datetime:
    return datetime.now(UTC)
