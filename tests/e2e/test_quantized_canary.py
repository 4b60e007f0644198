"""A quantized version canaried against the float one, through both tiers.

The safe way to ship compression: version 2 is version 1 with an int8
``model.tflite`` beside its SavedModel (converted and checked by the export
tool's own code), the graph tier runs with ``--prefer_tflite_model=true``, and
the logic tier canaries 2 against 1 like any other pair of versions. Its
dashboard feed says which version is quantized.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from support.ctr_artifacts import synthetic_records
from support.ctr_versions import publish_version
from support.ports import free_port
from support.processes import Process
from support.waiting import wait_until

from graph_service.command import graph_service_command
from logic_service.features import ctr

NAME = "squeezed"
TOKEN = "quantized-canary-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _quantized_copy(repo: Path, transformer: Any) -> Path:
    """Version 2: version 1's files plus an int8 model.tflite, manifest updated."""
    from export.publish.quantize import TFLITE_FILE, convert

    source, staging = repo / NAME / "1", repo / NAME / ".tmp-2"
    shutil.copytree(source, staging)
    derived = pd.DataFrame([ctr.derive(r) for r in synthetic_records(200, seed=4)])
    rows = np.asarray(transformer.transform(derived), np.float32)
    model = convert(staging, "serving_default", "int8", {"features": rows})
    (staging / TFLITE_FILE).write_bytes(model)
    manifest_path = staging / "assets.extra" / "tierkit.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = 2
    if manifest.get("files") is not None:
        manifest["files"][TFLITE_FILE] = hashlib.sha256(model).hexdigest()
    manifest["compression"] = {"format": "tflite", "mode": "int8", "file": TFLITE_FILE}
    manifest_path.write_text(json.dumps(manifest))
    staging.rename(repo / NAME / "2")
    return repo / NAME / "2"


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory, transformer: Any) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("quantized_canary")
    repo = directory / "serving_models"
    publish_version(repo, NAME, 1, transformer, seed=5)
    _quantized_copy(repo, transformer)
    config = directory / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "{NAME}" base_path: "{repo / NAME}" '
        'model_platform: "tensorflow" model_version_policy { all {} } } }\n'
    )
    grpc_port, rest_port, port = free_port(), free_port(), free_port()
    graph = Process(
        graph_service_command(
            grpc_port, rest_port, f"--model_config_file={config}", "--prefer_tflite_model=true"
        ),
        directory / "graph.log",
    )
    graph.start()
    logic = None
    try:
        wait_until(
            lambda: "Serving squeezed version 2 from model.tflite" in graph.tail(200)
            and httpx.get(f"http://127.0.0.1:{rest_port}/v1/models/{NAME}", timeout=2)
            .text.count("AVAILABLE") == 2,
            120, "both versions AVAILABLE, 2 from model.tflite",
        )
        (directory / "logic.yaml").write_text(
            f"port: {port}\nmodel_repository: {repo}\nmodels: [{{name: {NAME}}}]\n"
            f"admin_token: {TOKEN}\nrollout_refresh_s: 0.2\nstatus_refresh_s: 0.5\n"
            f"graph: {{protocol: grpc, grpc_address: '127.0.0.1:{grpc_port}', "
            "deadline_ms: 5000}\n"
            f"storage: {{database_url: 'sqlite:///{directory / 'log.db'}', "
            "flush_interval_ms: 50}\n"
            f"log: {{dir: {directory / 'logs'}, console: false}}\n"
        )
        logic = Process(
            [sys.executable, "-m", "logic_service", "serve", "--config",
             str(directory / "logic.yaml")],
            directory / "logic.out",
        )
        logic.start()
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: httpx.get(f"{url}/admin/rollouts/{NAME}", headers=AUTH, timeout=2)
            .json().get("serving") == [1, 2],
            90, "the logic tier to route versions 1 and 2",
        )
        yield url
    finally:
        if logic is not None:
            logic.stop()
        graph.stop()


def _score(client: httpx.Client, url: str, user: int, version: int | None = None) -> dict:
    record = {**ctr.EXAMPLE_REQUEST, "userId": user}
    answer = client.post(f"{url}/v1/models/{NAME}/predict", json=record, timeout=15)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_dashboard_feed_says_which_version_is_quantized(tiers: str) -> None:
    summary = httpx.get(f"{tiers}/dashboard/api/summary", headers=AUTH, timeout=15).json()
    model = next(m for m in summary["models"] if m["name"] == NAME)
    assert model["quantized"] == {"2": "int8"}


def test_a_quantized_candidate_is_canaried_and_promoted(tiers: str) -> None:
    spec = {
        "strategy": "canary", "baseline": 1, "candidate": 2, "stages": [50, 100],
        "dwell_s": 1, "guardrails": {"min_requests": 5, "max_p99_ratio": 20.0},
    }
    answer = httpx.put(f"{tiers}/admin/rollouts/{NAME}", json=spec, headers=AUTH, timeout=15)
    assert answer.status_code == 200, answer.text
    scores: dict[int, list[float]] = {1: [], 2: []}
    deadline = time.monotonic() + 60
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            for user in range(10):
                body = _score(client, tiers, user)
                scores[body["version"]].append(body["prediction"]["score"])
            state = httpx.get(f"{tiers}/admin/rollouts/{NAME}", headers=AUTH, timeout=5).json()
            if state["state"]["canary"]["status"] == "promoted":
                break
        else:
            raise AssertionError(f"not promoted in 60 s: {state}")
        assert scores[1] and scores[2]  # both arms answered during the canary
        # Every record is the example request, so the two arms score the same row:
        # int8 answers within its step of the float answer.
        assert abs(np.mean(scores[2]) - np.mean(scores[1])) < 0.02
        assert {_score(client, tiers, u)["version"] for u in range(20)} == {2}
