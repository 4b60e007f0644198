"""The log's aggregates against a full scan of its rows, on real SQLite and real PostgreSQL.

Random logs (seeded: two models, versions with and without a version, arms,
request APIs, pinned traffic, 2xx/4xx/5xx, batch requests, repeated request
ids, classification and regression scores) are written through the writer's
own flush transaction (``insert_with_aggregates``), then given feedback
through ``store_feedback`` (first labels, overwrites, reward-only writes).
Every number the dashboard, the evaluation endpoint and the guardrails read
from the aggregates must equal what a scan of the rows computes: counts
exactly, sums to float precision, latency percentiles within their bin
(a factor 2^(1/4)), AUC within the ``auc_max_error`` the answer states.
The scan below is the pre-aggregate implementation, kept here as the reference.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from logic_service.dashboard.api_panel import api_traffic
from logic_service.dashboard.feed import traffic_history
from logic_service.storage.database import open_database
from logic_service.storage.evaluation import histogram_auc, histogram_percentile, version_stats
from logic_service.storage.feedback_store import store_feedback
from logic_service.storage.log_aggregates import (
    LATENCY_COLUMNS,
    latency_bin,
    prediction_buckets,
    score_bin,
)
from logic_service.storage.prediction_log import (
    insert_ignoring_duplicates,
    insert_with_aggregates,
    predictions,
)

BIN = 2**0.25
# an hour ago, on a minute boundary, plus 7 s: windows below cut through buckets
ORIGIN = datetime.fromtimestamp((datetime.now(UTC).timestamp() // 60 - 60) * 60 + 7, UTC)
BASE = ORIGIN - timedelta(seconds=7)  # the minute boundary before it


@pytest.fixture
def engine(both_engines: sa.Engine) -> sa.Engine:
    return both_engines


def random_log(seed: int, n: int = 400) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        model = "ctr" if rng.random() < 0.8 else "price"
        version = [None, 1, 2, 3][int(rng.choice(4, p=[0.05, 0.5, 0.3, 0.15]))]
        status = int(rng.choice([200, 200, 200, 200, 422, 503]))
        if version is None:
            status = int(rng.choice([404, 503]))
        records = int(rng.choice([1, 1, 1, 2, 3])) if status == 200 else 1
        ts = ORIGIN + timedelta(seconds=float(rng.uniform(0, 1800)))
        request_id = f"r{seed}-{i}" if rng.random() > 0.02 else f"r{seed}-{i - 1}"  # repeats
        for index in range(records):
            score = None
            if status == 200 and rng.random() > 0.05:
                score = (
                    float(np.round(rng.random(), int(rng.choice([2, 6]))))
                    if model == "ctr"
                    else float(rng.normal(10, 3))
                )
            rows.append(
                {
                    "request_id": request_id,
                    "record_index": index,
                    "batch_size": records,
                    "ts": ts,
                    "model": model,
                    "version": version,
                    "arm": [None, "a", "b"][int(rng.integers(3))] if version else None,
                    "strategy": ["split", "pinned", None][int(rng.integers(3))],
                    "api_version": [None, "v1", "v2"][int(rng.integers(3))],
                    "input": "{}",
                    "output": None,
                    "score": score,
                    "latency_ms": float(rng.gamma(2.0, 4.0)) + (0.1 if rng.random() < 0.9 else 900),
                    "status": status,
                    "error": None if status == 200 else "x",
                    "label": None,
                    "reward": None,
                    "feedback_at": None,
                    "feedback_updates": 0,
                }
            )
    return rows


def write(engine: sa.Engine, rows: list[dict[str, Any]], chunk: int = 97) -> None:
    """Through the writer's flush transaction, in flush-sized chunks."""
    statement = insert_ignoring_duplicates(engine)
    for start in range(0, len(rows), chunk):
        with engine.begin() as connection:
            insert_with_aggregates(
                connection, statement, [dict(r) for r in rows[start : start + chunk]]
            )


def give_feedback(engine: sa.Engine, seed: int) -> None:
    """Labels on a fifth of the records; some overwritten, some replaced by a reward."""
    rng = np.random.default_rng(seed + 1000)
    with engine.connect() as connection:
        keys = connection.execute(
            sa.select(predictions.c.request_id, predictions.c.record_index, predictions.c.model)
        ).all()
    for request_id, index, model in keys:
        if rng.random() > 0.2:
            continue
        if model == "price":
            store_feedback(engine, request_id, index, float(rng.normal(10, 3)), None)
            continue
        store_feedback(engine, request_id, index, float(rng.integers(2)), None)
        draw = rng.random()
        if draw < 0.2:  # changed mind
            store_feedback(engine, request_id, index, float(rng.integers(2)), None)
        elif draw < 0.25:  # a reward now, the label gone
            store_feedback(engine, request_id, index, None, float(rng.integers(2)))


def scan(
    engine: sa.Engine,
    model: str,
    since: datetime,
    until: datetime,
    by_arm: bool,
    arms: set[str] | None = None,
) -> dict[tuple, dict[str, Any]]:
    """The numbers computed row by row (the implementation before aggregates)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(predictions).where(
                predictions.c.model == model,
                predictions.c.version.is_not(None),
                predictions.c.ts >= since,
                predictions.c.ts < until,
            )
        ).all()
    groups: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: (
            {"requests": 0, "errors": 0, "latencies": [], "records": 0, "feedback": 0}
            | {"positives": 0, "scored": []}
        )
    )
    for row in rows:
        if arms is not None and row.arm not in arms:
            continue
        group = groups[(row.version, (row.arm if by_arm else None))]
        ok = 200 <= row.status < 300
        if row.record_index == 0:
            group["requests"] += 1
            group["errors"] += row.status >= 500
            if ok:
                group["latencies"].append(row.latency_ms)
        if not ok:
            continue
        group["records"] += 1
        outcome = row.label if row.label is not None else row.reward
        if outcome is None:
            continue
        group["feedback"] += 1
        group["positives"] += outcome >= 0.5
        if row.score is not None:
            group["scored"].append((row.score, outcome))
    return groups


def check_against_scan(engine: sa.Engine, model: str, since: datetime, until: datetime) -> int:
    compared = 0
    # per version, per version and arm, and per version over some arms (a canary's stage)
    for by_arm, arms in ((False, None), (True, None), (False, {"a", "b"}), (True, {"b"})):
        expected = scan(engine, model, since, until, by_arm, arms)
        stats = version_stats(engine, model, since, until, by_arm, arms=arms)
        assert {(s.version, s.arm) for s in stats} == set(expected)
        for s in stats:
            e = expected[(s.version, s.arm)]
            assert (s.requests, s.errors, s.records) == (e["requests"], e["errors"], e["records"])
            assert (s.feedback, s.positives, s.labelled) == (
                e["feedback"],
                e["positives"],
                len(e["scored"]),
            )
            for q, got in ((50, s.p50_ms), (95, s.p95_ms), (99, s.p99_ms)):
                if not e["latencies"]:
                    assert got is None
                    continue
                exact = float(np.percentile(e["latencies"], q))
                assert exact / BIN - 1e-9 <= got <= exact * BIN + 1e-9
            check_quality(s, e["scored"])
            compared += 1
    return compared


def check_quality(s: Any, scored: list[tuple[float, float]]) -> None:
    if not scored:
        assert s.accuracy is None and s.auc is None and s.mae is None
        return
    scores = np.array([x for x, _ in scored])
    outcomes = np.array([y for _, y in scored])
    if not np.isin(outcomes, (0.0, 1.0)).all():
        assert s.mae == pytest.approx(float(np.abs(scores - outcomes).mean()))
        assert s.rmse == pytest.approx(math.sqrt(float(((scores - outcomes) ** 2).mean())))
        assert s.accuracy is None and s.auc is None
        return
    assert s.accuracy == pytest.approx(float(((scores >= 0.5) == outcomes).mean()))
    p = np.clip(scores, 1e-15, 1 - 1e-15)
    loss = -(outcomes * np.log(p) + (1 - outcomes) * np.log(1 - p))
    assert s.log_loss == pytest.approx(float(loss.mean()), rel=1e-9, abs=1e-9)
    positives = int(outcomes.sum())
    if positives in (0, len(outcomes)):
        assert s.auc is None
        return
    ranks = rankdata(scores)
    exact = (ranks[outcomes == 1].sum() - positives * (positives + 1) / 2) / (
        positives * (len(outcomes) - positives)
    )
    assert abs(s.auc - exact) <= s.auc_max_error + 1e-9


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aggregates_equal_a_full_scan(engine: sa.Engine, seed: int) -> None:
    rows = random_log(seed)
    write(engine, rows)
    give_feedback(engine, seed)
    compared = 0
    for model in ("ctr", "price"):
        # windows on 10-second boundaries (what the aggregates resolve): whole minutes,
        # minutes with 10-second ends, less than a minute, a single bucket
        for offset_s, length_s in ((0, 1800), (30, 600), (50, 130), (60, 10), (1200, 10)):
            since = BASE + timedelta(seconds=offset_s)
            until = since + timedelta(seconds=length_s)
            compared += check_against_scan(engine, model, since, until)
    assert compared > 20
    # the dashboard's charts and API panel count what the rows say
    now = ORIGIN + timedelta(minutes=30)
    history = traffic_history(engine, "ctr", now, 3600, 120)
    first = [r for r in {(r["request_id"], r["record_index"]): r for r in reversed(rows)}.values()]
    ctr = [r for r in first if r["model"] == "ctr" and r["record_index"] == 0]
    for version in (1, 2, 3):
        assert sum(history["versions"][str(version)]) == sum(r["version"] == version for r in ctr)
    traffic = api_traffic(engine, "ctr", ORIGIN - timedelta(minutes=1), now + timedelta(minutes=1))
    assert sum(t.routed + t.pinned for t in traffic) == len(ctr)
    assert sum(t.pinned for t in traffic) == sum(r["strategy"] == "pinned" for r in ctr)
    assert sum(t.errors for t in traffic) == sum(r["status"] >= 500 for r in ctr)


def _at_once(
    engine: sa.Engine, count: int, work: Callable[[sa.Engine, int], object]
) -> list[BaseException]:
    """``work(an engine of its own, w)`` for w in range(count), in threads at once; the errors.

    An engine each, as replicas have: the race is between connections, not in one pool.
    """
    engines = [open_database(str(engine.url.render_as_string(False))) for _ in range(count)]
    errors: list[BaseException] = []

    def run(w: int) -> None:
        try:
            work(engines[w], w)
        except BaseException as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in engines:
        other.dispose()
    return errors


def test_several_writers_add_to_the_same_buckets(engine: sa.Engine) -> None:
    """Replicas flushing at once into the same buckets: every increment lands."""
    ts = ORIGIN + timedelta(seconds=30)
    writers = 4
    per_writer = [
        [
            {
                "request_id": f"w{w}-{i}",
                "record_index": 0,
                "batch_size": 1,
                "ts": ts,
                "model": "ctr",
                "version": 1,
                "arm": "a",
                "latency_ms": 5.0,
                "status": 200,
            }
            for i in range(200)
        ]
        for w in range(writers)
    ]
    errors = _at_once(engine, writers, lambda own, w: write(own, per_writer[w], chunk=10))
    assert errors == []
    with engine.connect() as connection:
        totals = connection.execute(
            sa.select(
                prediction_buckets.c.bucket_s,
                sa.func.sum(prediction_buckets.c.requests),
                sa.func.sum(prediction_buckets.c[LATENCY_COLUMNS[latency_bin(5.0)]]),
            ).group_by(prediction_buckets.c.bucket_s)
        ).all()
    assert sorted(totals) == [(10, 800, 800), (60, 800, 800)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.01, 50_000, allow_nan=False), min_size=1, max_size=300))
def test_histogram_percentiles_stay_in_the_exact_values_bin(latencies: list[float]) -> None:
    """Within a factor 2^(1/4); values under 0.25 ms (the first bin) add up to 0.25 ms."""
    counts = [0] * len(LATENCY_COLUMNS)
    for value in latencies:
        counts[latency_bin(value)] += 1
    for q in (0, 50, 95, 99, 100):
        exact = float(np.percentile(latencies, q))
        got = histogram_percentile(counts, q)
        if min(latencies) >= 0.25:
            assert exact / BIN - 1e-9 <= got <= exact * BIN + 1e-9
        else:
            assert abs(got - exact) <= 0.25 + (BIN - 1) * exact + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-0.5, 1.5, allow_nan=False), st.booleans()), min_size=2, max_size=300
    )
)
def test_histogram_auc_is_within_its_stated_bound(pairs: list[tuple[float, bool]]) -> None:
    scores = np.array([s for s, _ in pairs])
    labels = np.array([int(y) for _, y in pairs])
    positive, negative = [0] * 128, [0] * 128
    for score, label in pairs:
        (positive if label else negative)[score_bin(score)] += 1
    found = histogram_auc(positive, negative)
    if labels.sum() in (0, len(labels)):
        assert found is None
        return
    auc, bound = found
    p = int(labels.sum())
    ranks = rankdata(scores)
    exact = (ranks[labels == 1].sum() - p * (p + 1) / 2) / (p * (len(labels) - p))
    assert abs(auc - exact) <= bound + 1e-12


def test_concurrent_feedback_on_one_record_moves_its_label_once(engine: sa.Engine) -> None:
    """Last write wins in the row and in the aggregates: no outcome subtracted twice."""
    row = random_log(9, n=1)[0] | {"model": "ctr", "version": 1, "status": 200, "score": 0.8}
    row |= {"record_index": 0, "batch_size": 1, "request_id": "contested"}
    write(engine, [row])

    def feedback(own: sa.Engine, w: int) -> None:
        for i in range(15):
            store_feedback(own, "contested", 0, float((w + i) % 2), None)

    errors = _at_once(engine, 4, feedback)
    assert errors == []
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(predictions.c.label, predictions.c.feedback_updates)
        ).one()
    assert stored.feedback_updates == 60
    day = row["ts"] - timedelta(hours=1), row["ts"] + timedelta(hours=1)
    (stats,) = version_stats(engine, "ctr", *day)
    assert (stats.feedback, stats.labelled, stats.positives) == (1, 1, int(stored.label))
    assert stats.accuracy == float(stored.label == 1.0)
