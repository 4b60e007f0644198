"""``/dashboard`` and its JSON feed, on a real app with a real SQLite prediction log.

No graph tier answers (a dead loopback port): the feed must still show what
the prediction log knows, and say per panel what it cannot show. Rows are
written straight into the ``predictions`` table, so the expected numbers are
computed here from the rows, not copied from the code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from support.ports import free_port

from logic_service.app import create_app
from logic_service.dashboard import STATIC_DIR
from logic_service.services import services_of
from logic_service.settings import LogicSettings
from logic_service.settings.rollout import RolloutSpec
from logic_service.storage.log_aggregates import add_rows
from logic_service.storage.prediction_log import predictions

TOKEN = "dashboard-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    port = free_port()
    tmp = tmp_path_factory.mktemp("dashboard")
    settings = LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{port}", "deadline_ms": 300},
        model_repository=tmp / "models",
        models=[{"name": "ctr"}, {"name": "other"}],
        admin_token=TOKEN,
        storage={"database_url": f"sqlite:///{tmp / 'log.db'}", "flush_interval_ms": 50},
    )
    with TestClient(create_app(settings, configure_logs=False)) as test_client:
        yield test_client


def _rows(now: datetime) -> list[dict]:
    """Version 1: six requests (one 500, one a batch of two records); version 2: three."""
    rows = []
    for i, latency in enumerate([10.0, 20.0, 30.0, 40.0, 50.0, 60.0]):
        rows.append(
            {
                "request_id": f"v1-{i}",
                "ts": now - timedelta(seconds=5 + i),
                "model": "ctr",
                "version": 1,
                "arm": "baseline",
                "latency_ms": latency,
                "status": 500 if i == 5 else 200,
                "batch_size": 2 if i == 0 else 1,
            }
        )
    rows.append({**rows[0], "record_index": 1})  # second record of the batch: same request
    for i, latency in enumerate([5.0, 7.0, 9.0]):
        rows.append(
            {
                "request_id": f"v2-{i}",
                "ts": now - timedelta(seconds=15 + i),
                "model": "ctr",
                "version": 2,
                "arm": "candidate",
                "latency_ms": latency,
                "status": 200,
            }
        )
    # long ago: outside every window the page shows
    rows.append({**rows[1], "request_id": "old", "ts": now - timedelta(hours=3)})
    return [{"record_index": 0, "batch_size": 1, **row} for row in rows]


@pytest.fixture(scope="module")
def logged(client: TestClient) -> list[dict]:
    rows = _rows(datetime.now(UTC))
    with services_of(client.app).database.begin() as connection:
        connection.execute(insert(predictions), rows)
        add_rows(connection, rows)  # what the writer's flush adds with them
    return rows


def _model(client: TestClient, name: str = "ctr") -> dict:
    response = client.get("/dashboard/api/summary")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return next(m for m in response.json()["models"] if m["name"] == name)


def test_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = ["/dashboard/static/dashboard.js", "/dashboard/static/dashboard.css"]
    for asset in assets:
        assert asset in page.text
        assert client.get(asset).status_code == 200
    # nothing fetched from elsewhere: the page works with no internet
    assert "http://" not in page.text and "https://" not in page.text
    assert "https://" not in client.get(assets[0]).text


def test_live_numbers_come_from_the_prediction_log(client: TestClient, logged: list) -> None:
    live = {s["version"]: s for s in _model(client)["live"]}
    minute_ago = datetime.now(UTC) - timedelta(seconds=60)
    first = [
        r for r in logged if r["version"] == 1 and r["record_index"] == 0 and r["ts"] > minute_ago
    ]
    assert live[1]["requests"] == len(first)
    assert live[1]["errors"] == sum(r["status"] >= 500 for r in first)
    assert live[1]["error_rate"] == pytest.approx(live[1]["errors"] / len(first))
    assert live[1]["rps"] == pytest.approx(len(first) / 60)
    ok = [r["latency_ms"] for r in first if r["status"] < 400]
    # from the aggregates' latency histogram: within a factor 2^(1/4) of the exact value
    for q in (50, 99):
        assert 2**-0.25 <= live[1][f"p{q}_ms"] / np.percentile(ok, q) <= 2**0.25
    assert live[2]["requests"] == 3 and live[2]["errors"] == 0


def test_history_counts_requests_per_version(client: TestClient, logged: list) -> None:
    history = _model(client)["history"]
    assert len(history["starts"]) == len(history["versions"]["1"])
    recent = [r for r in logged if r["ts"] > datetime.now(UTC) - timedelta(minutes=5)]
    for version in (1, 2):
        expected = [r for r in recent if r["version"] == version and r["record_index"] == 0]
        assert sum(history["versions"][str(version)]) == len(expected)
    assert sum(history["errors"]["1"]) == 1
    assert sum(history["errors"]["2"]) == 0


def test_evaluation_panel_and_graph_status(client: TestClient, logged: list) -> None:
    model = _model(client)
    evaluated = {s["version"]: s for s in model["evaluation"]["versions"]}
    assert set(evaluated) == {1, 2}
    assert evaluated[1]["feedback"] == 0
    assert model["ready_versions"] == []  # no graph tier: nothing routable, said so
    summary = client.get("/dashboard/api/summary").json()
    assert summary["ready"] is False
    assert any("graph tier unreachable" in p for p in summary["problems"])
    assert summary["admin_enabled"] is True


def test_model_filter_and_unknown_model(client: TestClient) -> None:
    only = client.get("/dashboard/api/summary", params={"model": "other"}).json()
    assert [m["name"] for m in only["models"]] == ["other"]
    response = client.get("/dashboard/api/summary", params={"model": "nope"})
    assert response.status_code == 404
    assert "unknown model 'nope'" in response.json()["error"]["message"]


def test_rollout_panel_follows_promote_and_rollback(client: TestClient) -> None:
    assert _model(client)["rollout"]["strategy"] == "stable"
    # Stored directly: PUT refuses versions no graph tier serves (tests/e2e covers that door).
    spec = {"strategy": "canary", "baseline": "1", "candidate": "2", "stages": [5, 25, 100]}
    services_of(client.app).rollouts.put("ctr", RolloutSpec.model_validate(spec), "set")
    rollout = _model(client)["rollout"]
    assert rollout["canary"]["share"] == 5
    # neither version serves here (no repository folder, no graph tier): the panel says so,
    # and /metrics counts them
    assert [w["message"] for w in rollout["warnings"]] == [
        "canary baseline 1: not loaded by the graph tier",
        "canary candidate 2: not loaded by the graph tier",
    ]
    assert 'tierkit_rollout_missing_versions{model="ctr"} 2.0' in client.get("/metrics").text
    assert client.post("/admin/rollouts/ctr/promote", headers=AUTH).status_code == 200
    rollout = _model(client)["rollout"]
    assert rollout["canary"]["share"] == 25 and rollout["canary"]["stage"] == 1
    metrics = client.get("/metrics").text
    assert 'tierkit_rollout_stage{model="ctr",strategy="canary"} 1.0' in metrics
    assert 'tierkit_rollout_candidate_share{model="ctr",strategy="canary"} 25.0' in metrics
    assert client.post("/admin/rollouts/ctr/rollback", headers=AUTH).status_code == 200
    rollout = _model(client)["rollout"]
    assert rollout["canary"]["share"] == 0 and rollout["canary"]["status"] == "rolled_back"
    assert (
        'tierkit_rollout_stage{model="ctr",strategy="canary"} -1.0' in client.get("/metrics").text
    )
    assert [e["kind"] for e in rollout["events"]][-3:] == ["set", "promote", "rollback"]
    # the other model's panel is untouched
    assert _model(client, "other")["rollout"]["strategy"] == "stable"


def test_history_window_is_bounded_and_named_when_wrong(client: TestClient, logged: list) -> None:
    history = client.get("/dashboard/api/summary", params={"history_s": 60}).json()["models"][0]
    # charts are summed from the 10-second aggregates: a bucket is never shorter
    assert history["history"]["bucket_s"] == 10
    assert len(history["history"]["starts"]) == 6
    response = client.get("/dashboard/api/summary", params={"history_s": 5})
    assert response.status_code == 422
    assert "history_s" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("share", "shown"),
    [
        (20 / 49_926, "0.040 %"),  # issue 28: showed "0.0 %"
        (1 / 1_000_000, "0.00010 %"),
        (0.0, "0 %"),
        (0.5, "50.0 %"),
        (0.0123, "1.2 %"),
        (0.00999, "1.0 %"),
        (None, "\u2013"),  # an en dash: nothing to show
    ],
)
def test_coverage_is_shown_with_enough_precision(share: float | None, shown: str) -> None:
    """The page's formatter itself, run by node (the page's script, not a copy of it)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH to run the dashboard's script")
    script = STATIC_DIR / "format.js"
    code = (
        f"const {{ sharePct }} = require({json.dumps(str(script))});"
        f"process.stdout.write(sharePct({json.dumps(share)}));"
    )
    result = subprocess.run([node, "-e", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown
    assert "format.js" in (STATIC_DIR / "dashboard.html").read_text()
