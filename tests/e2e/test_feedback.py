"""Prediction log, feedback and evaluation through the real stack.

The session's graph tier, and a logic tier of its own (two uvicorn workers,
so two writers share one SQLite file and feedback often reaches the worker
that did not answer the prediction) whose database lives in the tmp dir.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from support.ctr_artifacts import synthetic_records
from support.graph_tier import GraphTier
from support.ports import free_port
from support.processes import ROOT, Process
from support.waiting import wait_until

from logic_service.features import ctr
from logic_service.storage.database import open_database
from logic_service.storage.prediction_log import predictions

from .stack import MODEL, MODELS, LogicTier

PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture(scope="module")
def logged(graph: GraphTier, stack_dir: Path) -> Iterator[tuple[LogicTier, sa.Engine]]:
    port = free_port()
    database = stack_dir / "feedback" / "log.db"
    config = stack_dir / "logic-feedback.yaml"
    config.write_text(
        f"port: {port}\n"
        "workers: 2\n"
        f"model_repository: {graph.repo}\n"
        f"models: [{', '.join(f'{{name: {m}}}' for m in MODELS)}]\n"
        "graph:\n"
        f"  grpc_address: 127.0.0.1:{graph.grpc_port}\n"
        f"  rest_url: {graph.rest_url}\n"
        f"log:\n  dir: {stack_dir / 'logs-feedback'}\n"
        "storage:\n"
        f"  database_url: sqlite:///{database}\n"
        "  flush_interval_ms: 100\n"
        "  feedback_wait_ms: 3000\n"
    )
    process = Process(
        [sys.executable, "-m", "logic_service", "serve", "--config", str(config)],
        stack_dir / "logic-feedback.out",
        env={"PYTHONPATH": str(ROOT / "tests")},
    )
    process.start()
    tier = LogicTier(process, f"http://127.0.0.1:{port}", "grpc", stack_dir / "logs-feedback")

    def ready() -> bool:
        if not process.alive():
            raise AssertionError(f"logic_service died:\n{process.tail()}")
        return all(tier.ready() for _ in range(6))  # both workers

    try:
        wait_until(ready, 90, "logic tier with a prediction log")
        engine = open_database(f"sqlite:///{database}")
    except BaseException:
        process.stop()
        raise
    yield tier, engine
    process.stop()
    engine.dispose()


def _rows(engine: sa.Engine, prefix: str) -> list:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(predictions)
            .where(predictions.c.request_id.like(f"{prefix}%"))
            .order_by(predictions.c.request_id, predictions.c.record_index)
        ).all()


def test_predictions_are_logged_joined_and_evaluated(logged) -> None:
    tier, engine = logged
    rng = random.Random(11)
    answers: dict[str, dict] = {}
    failed: list[str] = []
    with httpx.Client(base_url=tier.url, timeout=20) as client:
        for i, record in enumerate(synthetic_records(30, seed=3)):
            request_id = f"fb-one-{i}"
            response = client.post(PREDICT, json=record, headers={"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
            answers[request_id] = response.json()
        for i in range(2):
            request_id = f"fb-many-{i}"
            body = {"records": synthetic_records(5, seed=20 + i)}
            response = client.post(PREDICT, json=body, headers={"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
            answers[request_id] = response.json()
        for i in range(3):
            request_id = f"fb-bad-{i}"
            bad = ctr.EXAMPLE_REQUEST | {"birthday": "29.04.1995"}
            response = client.post(PREDICT, json=bad, headers={"X-Request-ID": request_id})
            assert response.status_code == 422
            failed.append(request_id)
    scored = 30 + 2 * 5

    # N answered records -> N rows with status 200; each failure is one row of its status
    def all_logged() -> list | None:
        found = _rows(engine, "fb-")
        return found if len(found) == scored + 3 else None

    rows = wait_until(all_logged, 30, "every answer in the prediction log")
    ok = [r for r in rows if r.status == 200]
    assert len(ok) == scored
    assert sorted(r.request_id for r in rows if r.status != 200) == failed
    assert {r.error for r in rows if r.status != 200} == {"invalid_input"}
    for row in ok:
        answer = answers[row.request_id]
        prediction = (
            answer["predictions"][row.record_index]
            if "predictions" in answer
            else answer["prediction"]
        )
        assert row.score == pytest.approx(prediction["score"], abs=1e-6)
        assert row.version == answer["version"] and row.model == MODEL

    # feedback for most records, through whichever worker takes the connection
    labels: dict[tuple[str, int], int] = {}
    with httpx.Client(base_url=tier.url, timeout=20) as client:
        for request_id, answer in answers.items():
            count = len(answer.get("predictions", [None]))
            for index in range(count):
                if rng.random() < 0.2:
                    continue
                label = rng.randint(0, 1)
                payload = {"request_id": request_id, "label": label}
                if count > 1:
                    payload["index"] = index
                response = httpx.post(f"{tier.url}/v1/feedback", json=payload, timeout=20)
                assert response.status_code == 200, response.text
                assert response.json()["updates"] == 1
                labels[(request_id, index)] = label
        unknown = client.post("/v1/feedback", json={"request_id": "fb-nope", "label": 1})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"

        evaluation = client.get(f"/v1/models/{MODEL}/evaluation", params={"window": "15m"})
        assert evaluation.status_code == 200, evaluation.text
        (stats,) = evaluation.json()["versions"]
        assert client.get(f"/v1/models/{MODEL}/evaluation?window=15x").status_code == 422

    scores = np.array([r.score for r in ok if (r.request_id, r.record_index) in labels])
    truth = np.array(
        [
            labels[(r.request_id, r.record_index)]
            for r in ok
            if (r.request_id, r.record_index) in labels
        ]
    )
    assert stats["requests"] == 30 + 2 + 3 and stats["errors"] == 0
    assert stats["records"] == scored and stats["feedback"] == len(labels)
    assert stats["coverage"] == pytest.approx(len(labels) / scored)
    assert stats["positives"] == int(truth.sum())
    assert stats["accuracy"] == pytest.approx(accuracy_score(truth, scores >= 0.5))
    # from the aggregates' score bins: at most auc_max_error from the exact AUC
    assert abs(stats["auc"] - roc_auc_score(truth, scores)) <= stats["auc_max_error"] + 1e-12
    assert stats["log_loss"] == pytest.approx(log_loss(truth, scores))
    latencies = [r.latency_ms for r in ok if r.record_index == 0]
    # from the aggregates' latency histogram: within a factor 2^(1/4)
    assert 2**-0.25 <= stats["p50_ms"] / np.percentile(latencies, 50) <= 2**0.25
