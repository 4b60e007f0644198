"""Online evaluation numbers against ones computed independently (sklearn, numpy).

A seeded synthetic prediction log is written straight into a real SQLite
``predictions`` table, with its aggregates as the writer's flush adds them:
two versions, two arms, a regression model, failures, rows outside the
window, batch requests and partial feedback.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from logic_service.app import create_app
from logic_service.settings import LogicSettings
from logic_service.storage.database import open_database
from logic_service.storage.evaluation import hanley_mcneil, version_stats, wilson
from logic_service.storage.log_aggregates import add_rows
from logic_service.storage.prediction_log import predictions

NOW = datetime.now(UTC)


def within_latency_bin(got: float, exact: float) -> bool:
    """A histogram percentile: within a factor 2^(1/4) of the exact one (0.25 ms below 0.25 ms)."""
    if exact < 0.25 or got < 0.25:
        return abs(got - exact) < 0.25
    return 2**-0.25 <= got / exact <= 2**0.25


def _row(request_id: str, version: int, **values) -> dict:
    return {
        "request_id": request_id,
        "record_index": 0,
        "batch_size": 1,
        "ts": NOW - timedelta(minutes=5),
        "model": "ctr",
        "version": version,
        "arm": None,
        "strategy": None,
        "input": "{}",
        "output": None,
        "score": None,
        "latency_ms": 1.0,
        "status": 200,
        "error": None,
        "label": None,
        "reward": None,
        "feedback_at": None,
        "feedback_updates": 0,
    } | values


def _synthetic_log(seed: int = 7) -> tuple[list[dict], dict]:
    """Rows plus what the test expects, kept apart from the code under test."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    truth: dict = {}
    for version, arm, n, skill in ((1, "control", 400, 1.0), (2, "treatment", 300, 2.5)):
        labels = rng.integers(0, 2, n)
        scores = 1 / (1 + np.exp(-(skill * (labels - 0.5) + rng.normal(0, 1, n))))
        scores = np.round(scores, 2)  # ties, so the AUC's tie handling is exercised
        latencies = rng.gamma(2.0, 3.0 * version, n)
        has_feedback = rng.random(n) < 0.6
        for i in range(n):
            rows.append(
                _row(
                    f"v{version}-{i}",
                    version,
                    arm=arm,
                    score=float(scores[i]),
                    latency_ms=float(latencies[i]),
                    label=float(labels[i]) if has_feedback[i] else None,
                )
            )
        errors = 7 * version
        for i in range(errors):
            rows.append(_row(f"v{version}-err-{i}", version, arm=arm, status=503, latency_ms=500.0))
        for i in range(5):  # caller mistakes: requests, not errors
            rows.append(_row(f"v{version}-bad-{i}", version, arm=arm, status=422))
        # outside the window, with feedback: must change nothing
        for i in range(20):
            rows.append(
                _row(
                    f"v{version}-old-{i}",
                    version,
                    arm=arm,
                    ts=NOW - timedelta(hours=3),
                    score=0.99,
                    label=0.0,
                    status=503,
                )
            )
        labelled = has_feedback
        truth[version] = {
            "requests": n + errors + 5,
            "errors": errors,
            "latencies": latencies,
            "records": n,
            "feedback": int(labelled.sum()),
            "labels": labels[labelled],
            "scores": scores[labelled],
        }
    # a 3-record batch request on version 1: one request, three records
    for index, (score, label) in enumerate(((0.8, 1.0), (0.3, None), (0.6, 0.0))):
        rows.append(
            _row(
                "v1-batch",
                1,
                arm="control",
                record_index=index,
                batch_size=3,
                score=score,
                label=label,
                latency_ms=4.0,
            )
        )
    truth[1]["requests"] += 1
    truth[1]["records"] += 3
    truth[1]["feedback"] += 2
    truth[1]["latencies"] = np.append(truth[1]["latencies"], 4.0)
    truth[1]["labels"] = np.append(truth[1]["labels"], [1, 0])
    truth[1]["scores"] = np.append(truth[1]["scores"], [0.8, 0.6])
    # a regression model, and a failure before any version was chosen
    targets = rng.normal(10, 3, 50)
    guesses = targets + rng.normal(0.5, 1, 50)
    for i in range(50):
        rows.append(
            _row(f"reg-{i}", 4, model="price", score=float(guesses[i]), label=float(targets[i]))
        )
    truth["price"] = {"targets": targets, "guesses": guesses}
    rows.append(_row("no-version", None, status=503))
    return rows, truth


@pytest.fixture(scope="module")
def log_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    path = tmp_path_factory.mktemp("evaluation") / "log.db"
    url = f"sqlite:///{path}"
    engine = open_database(url)
    rows, truth = _synthetic_log()
    with engine.begin() as connection:
        connection.execute(sa.insert(predictions), rows)
        add_rows(connection, rows)  # what the writer's flush does
    engine.dispose()
    return url, truth


@pytest.fixture(scope="module")
def engine(log_db) -> sa.Engine:
    engine = open_database(log_db[0])
    yield engine
    engine.dispose()


def test_per_version_numbers_match_sklearn_and_numpy(engine: sa.Engine, log_db) -> None:
    truth = log_db[1]
    stats = version_stats(engine, "ctr", NOW - timedelta(hours=1))
    assert [s.version for s in stats] == [1, 2]
    for s in stats:
        t = truth[s.version]
        assert s.arm is None
        assert (s.requests, s.errors) == (t["requests"], t["errors"])
        assert s.error_rate == pytest.approx(t["errors"] / t["requests"])
        for q, got in ((50, s.p50_ms), (95, s.p95_ms), (99, s.p99_ms)):
            assert within_latency_bin(got, np.percentile(t["latencies"], q))
        assert (s.records, s.feedback) == (t["records"], t["feedback"])
        assert s.coverage == pytest.approx(t["feedback"] / t["records"])
        assert s.positives == int(t["labels"].sum())
        assert s.labelled == len(t["labels"])
        assert s.accuracy == pytest.approx(accuracy_score(t["labels"], t["scores"] >= 0.5))
        exact_auc = roc_auc_score(t["labels"], t["scores"])
        assert abs(s.auc - exact_auc) <= s.auc_max_error + 1e-12
        assert s.auc_max_error < 0.05  # scores rounded to 0.01: ties the bins keep
        assert s.log_loss == pytest.approx(log_loss(t["labels"], t["scores"]))
        assert s.mae is None and s.rmse is None
        for value, interval in (
            (s.accuracy, s.accuracy_ci),
            (s.auc, s.auc_ci),
            (s.error_rate, s.error_rate_ci),
            (s.log_loss, s.log_loss_ci),
        ):
            assert interval[0] < value < interval[1]
    assert stats[1].auc > stats[0].auc  # the more skilful version is seen as such


def test_by_arm_splits_and_regression_metrics(engine: sa.Engine, log_db) -> None:
    truth = log_db[1]
    stats = version_stats(engine, "ctr", NOW - timedelta(hours=1), by_arm=True)
    assert [(s.version, s.arm) for s in stats] == [(1, "control"), (2, "treatment")]
    (price,) = version_stats(engine, "price", NOW - timedelta(hours=1))
    targets, guesses = truth["price"]["targets"], truth["price"]["guesses"]
    assert price.mae == pytest.approx(mean_absolute_error(targets, guesses))
    assert price.rmse == pytest.approx(math.sqrt(mean_squared_error(targets, guesses)))
    assert price.accuracy is None and price.auc is None and price.log_loss is None
    assert price.mae_ci[0] < price.mae < price.mae_ci[1]


def test_windows_bound_the_rows(engine: sa.Engine, log_db) -> None:
    truth = log_db[1]
    wide = version_stats(engine, "ctr", NOW - timedelta(hours=4))
    assert wide[0].requests == truth[1]["requests"] + 20
    assert wide[0].errors == truth[1]["errors"] + 20
    assert version_stats(engine, "ctr", NOW - timedelta(hours=4), NOW - timedelta(hours=1)) != []
    old_only = version_stats(engine, "ctr", NOW - timedelta(hours=4), NOW - timedelta(hours=1))
    assert [(s.requests, s.errors, s.records, s.feedback) for s in old_only] == [
        (20, 20, 0, 0),
        (20, 20, 0, 0),
    ]
    assert version_stats(engine, "ctr", NOW - timedelta(minutes=1)) == []
    # naive datetimes are read as UTC
    naive = version_stats(engine, "ctr", (NOW - timedelta(hours=1)).replace(tzinfo=None))
    assert [s.requests for s in naive] == [truth[1]["requests"], truth[2]["requests"]]


def test_confidence_intervals() -> None:
    # Wilson 95 % interval of 8/10, as in Brown, Cai & DasGupta (2001) / standard tables
    low, high = wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson(0, 0) is None
    assert wilson(0, 50)[0] == 0.0 and wilson(50, 50)[1] == 1.0
    narrow, wide = hanley_mcneil(0.8, 500, 500), hanley_mcneil(0.8, 20, 20)
    assert wide[0] < narrow[0] < 0.8 < narrow[1] < wide[1]


def test_only_one_class_gives_no_auc(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'one.db'}")
    with engine.begin() as connection:
        rows = [_row(f"p{i}", 1, score=0.2 + i / 10, label=1.0) for i in range(5)]
        connection.execute(sa.insert(predictions), rows)
        add_rows(connection, rows)
    (stats,) = version_stats(engine, "ctr", NOW - timedelta(hours=1))
    assert stats.auc is None and stats.auc_ci is None
    assert stats.accuracy == pytest.approx(accuracy_score([1] * 5, [False, False, False, 1, 1]))
    engine.dispose()


def test_a_non_finite_output_is_an_error_of_the_version(tmp_path: Path) -> None:
    """422 non_finite_output: the version could not score a valid record (a broken canary
    answering NaN must trip the error guardrail); 422 invalid_input is the caller's."""
    engine = open_database(f"sqlite:///{tmp_path / 'nan.db'}")
    failures = {"nan1": "non_finite_output", "nan2": "non_finite_output", "bad": "invalid_input"}
    rows = [_row(f"ok{i}", 1, score=0.5) for i in range(3)] + [
        _row(rid, 1, status=422, error=code) for rid, code in failures.items()
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(predictions), rows)
        add_rows(connection, rows)  # what the writer's flush does
    (stats,) = version_stats(engine, "ctr", NOW - timedelta(hours=1))
    assert (stats.requests, stats.errors, stats.records) == (6, 2, 3)
    engine.dispose()


@pytest.fixture(scope="module")
def client(log_db, tmp_path_factory) -> TestClient:
    settings = LogicSettings(
        graph={"grpc_address": "127.0.0.1:9", "deadline_ms": 200},
        model_repository=tmp_path_factory.mktemp("models"),
        models=[{"name": "ctr"}, {"name": "price"}],
        storage={"database_url": log_db[0]},
        status_refresh_s=5,
    )
    with TestClient(create_app(settings, configure_logs=False)) as test_client:
        yield test_client


def test_endpoint_answers_with_the_numbers(client: TestClient, log_db) -> None:
    truth = log_db[1]
    response = client.get("/v1/models/ctr/evaluation", params={"window": "1h"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "ctr" and body["window"] == "1h"
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    assert until - since == timedelta(hours=1)
    versions = body["versions"]
    assert [(v["version"], v["arm"]) for v in versions] == [(1, "control"), (2, "treatment")]
    for v in versions:
        t = truth[v["version"]]
        assert v["requests"] == t["requests"]
        exact_auc = roc_auc_score(t["labels"], t["scores"])
        assert abs(v["auc"] - exact_auc) <= v["auc_max_error"] + 1e-12
        assert within_latency_bin(v["p99_ms"], np.percentile(t["latencies"], 99))
        assert len(v["accuracy_ci"]) == 2
    merged = client.get("/v1/models/ctr/evaluation?window=7d&by_arm=false").json()["versions"]
    assert [(v["version"], v["arm"]) for v in merged] == [(1, None), (2, None)]
    assert merged[0]["requests"] == truth[1]["requests"] + 20


@pytest.mark.parametrize("window", ["1w", "0h", "-1h", "h", "1.5h", "", "400d"])
def test_bad_window_is_422_naming_it(client: TestClient, window: str) -> None:
    response = client.get("/v1/models/ctr/evaluation", params={"window": window})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("window:")


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.get("/v1/models/nope/evaluation")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_model"
