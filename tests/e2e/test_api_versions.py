"""Two request APIs served at once during a migration, on real tiers (``api_versions_stack``).

v1 callers keep getting v1 model versions (1 and 2, the demo's features), v2
callers the v2 one (3, the newest, its own schema and features), each scored exactly as
the SavedModel and transformer score in-process; v1 answers announce its
deprecation; retiring v1 is refused while any replica logged a v1 request
within the window and done once none has, after which every replica answers
410 for v1 and v2 goes on.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from support.ctr_artifacts import synthetic_records
from support.ctr_versions import reference_scores
from support.processes import ROOT
from support.waiting import wait_until

from . import v2_features
from .api_versions_stack import AUTH, NAME, TOKEN, WINDOW_S, MigrationStack, start_stack

V1_HEADERS = {
    "deprecation": "@1796083200",  # 2026-12-01T00:00:00Z
    "sunset": "Wed, 30 Jun 2027 00:00:00 GMT",
    "link": f'</v2/models/{NAME}/predict>; rel="successor-version"',
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigrationStack]:
    stack = start_stack(tmp_path_factory.mktemp("api-versions"))
    yield stack
    stack.stop()


def _post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=15)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
    return error["message"]


def test_each_api_is_answered_by_its_own_versions_with_their_own_features(
    stack: MigrationStack,
) -> None:
    url = stack.replicas[0].url
    records = synthetic_records(8, seed=11)
    v1_scores, v2_scores = [], []
    for record in records:
        v1 = _post(url, f"/v1/models/{NAME}/predict", record)
        assert v1.status_code == 200, v1.text
        assert v1.json()["version"] == 2  # the newest version accepting v1, not 3 (a v2 one)
        v1_scores.append(v1.json()["prediction"]["score"])
        v2 = _post(url, f"/v2/models/{NAME}/predict", v2_features.from_v1(record))
        assert v2.status_code == 200, v2.text
        assert v2.json()["version"] == 3
        v2_scores.append(v2.json()["prediction"]["score"])
    model_dir = stack.repo / NAME
    expected_v1 = reference_scores(model_dir / "2", records)
    v2_records = [v2_features.from_v1(r) for r in records]
    expected_v2 = reference_scores(model_dir / "3", v2_records, derive=v2_features.derive)
    np.testing.assert_allclose(v1_scores, expected_v1, rtol=0, atol=1e-5)
    np.testing.assert_allclose(v2_scores, expected_v2, rtol=0, atol=1e-5)

    batch = _post(url, f"/v2/models/{NAME}/predict", {"records": v2_records})
    assert batch.status_code == 200, batch.text
    got = [p["score"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(got, expected_v2, rtol=0, atol=1e-5)

    # each API validates against its own versions' schema
    message = _error(_post(url, f"/v2/models/{NAME}/predict", records[0]), 422, "invalid_input")
    assert "user_id: is required" in message
    message = _error(_post(url, f"/v1/models/{NAME}/predict", v2_records[0]), 422, "invalid_input")
    assert "userId: is required" in message


def test_pinned_paths_answer_by_that_version_only_under_its_api(stack: MigrationStack) -> None:
    url = stack.replicas[0].url
    record = synthetic_records(1, seed=12)[0]
    v2_record = v2_features.from_v1(record)

    old = _post(url, f"/v1/models/{NAME}/versions/1/predict", record)  # manifest without API
    assert old.status_code == 200, old.text
    assert old.json()["version"] == 1
    expected = reference_scores(stack.repo / NAME / "1", [record])
    assert abs(old.json()["prediction"]["score"] - float(expected[0])) <= 1e-5

    beta = _post(url, f"/v2/models/{NAME}/labels/beta/predict", v2_record)  # asked of the graph
    assert beta.status_code == 200, beta.text
    assert beta.json()["version"] == 3

    message = _error(
        _post(url, f"/v1/models/{NAME}/versions/3/predict", record), 404, "version_not_in_api"
    )
    assert message == (
        f"model {NAME}: version 3 accepts API v2, not v1: call /v2/models/{NAME}/versions/3/predict"
    )
    message = _error(
        _post(url, f"/v1/models/{NAME}/labels/beta/predict", record), 404, "version_not_in_api"
    )
    assert message.endswith(f"call /v2/models/{NAME}/labels/beta/predict")
    message = _error(
        _post(url, f"/v2/models/{NAME}/versions/9/predict", v2_record), 404, "version_not_found"
    )
    assert message == (
        f"model {NAME}: version 9 is not loaded (served versions: 1, 2, 3; labels: beta=3; by "
        "API: API v1: versions 1, 2; API v2: version 3)"
    )


def test_v1_answers_announce_its_deprecation_and_v2_answers_do_not(stack: MigrationStack) -> None:
    url = stack.replicas[1].url
    record = synthetic_records(1, seed=13)[0]
    for response in (
        _post(url, f"/v1/models/{NAME}/predict", record),
        _post(url, f"/v1/models/{NAME}/predict", {}),  # a 422 is still an answer of v1
        _post(url, f"/v1/models/{NAME}/versions/1/predict", record),
    ):
        assert {k: response.headers.get(k) for k in V1_HEADERS} == V1_HEADERS
    v2 = _post(url, f"/v2/models/{NAME}/predict", v2_features.from_v1(record))
    assert v2.status_code == 200
    assert not {"deprecation", "sunset", "link"} & set(v2.headers)


def test_openapi_lists_v2_found_in_the_manifests(stack: MigrationStack) -> None:
    spec = httpx.get(f"{stack.replicas[0].url}/openapi.json", timeout=5).json()
    for api, deprecated in (("v1", True), ("v2", False)):
        for tail in ("predict", "versions/{version}/predict", "labels/{label}/predict"):
            operation = spec["paths"][f"/{api}/models/{{name}}/{tail}"]["post"]
            assert operation.get("deprecated", False) is deprecated, (api, tail)
    assert "/v3/models/{name}/predict" not in spec["paths"]


def test_requests_per_api_in_metrics_dashboard_and_prediction_log(stack: MigrationStack) -> None:
    url = stack.replicas[0].url
    record = synthetic_records(1, seed=14)[0]
    assert _post(url, f"/v2/models/{NAME}/versions/3/predict", v2_features.from_v1(record))
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    for api, version in (("v1", 2), ("v1", 1), ("v2", 3)):
        labels = f'api="{api}",model="{NAME}",status="200",version="{version}"'
        line = f"tierkit_api_requests_total{{{labels}}}"
        assert line in metrics, line
    assert f'tierkit_requests_total{{arm="pinned",model="{NAME}",status="200",version="3"}}' in (
        metrics
    )

    summary = httpx.get(f"{url}/dashboard/api/summary?model={NAME}", timeout=5).json()
    panel = summary["models"][0]["apis"]
    assert [(a["api_version"], a["versions"]) for a in panel["apis"]] == [
        ("v1", [1, 2]),
        ("v2", [3]),
    ]
    assert panel["apis"][0]["deprecated"] == "2026-12-01T00:00:00+00:00"
    traffic = {(t["api_version"], t["version"]): t for t in panel["traffic"]}
    assert traffic[("v1", 2)]["routed"] > 0 and traffic[("v1", 2)]["pinned"] == 0
    assert traffic[("v2", 3)]["routed"] > 0 and traffic[("v2", 3)]["pinned"] >= 2
    assert traffic[("v1", 1)]["pinned"] > 0  # only ever reached pinned

    def logged() -> list[tuple]:
        with sqlite3.connect(stack.database) as connection:
            return connection.execute(
                "SELECT api_version, version, strategy, count(*) FROM predictions "
                "WHERE model = ? AND status = 200 AND record_index = 0 "
                "GROUP BY api_version, version, strategy ORDER BY 1, 2, 3",
                (NAME,),
            ).fetchall()

    rows = wait_until(logged, 10, "rows in the shared prediction log")
    by_key = {(api, version, strategy): count for api, version, strategy, count in rows}
    assert set(by_key) >= {("v1", 1, "pinned"), ("v1", 2, "stable"), ("v2", 3, "pinned")}
    assert ("v2", 3, "stable") in by_key
    assert not [k for k in by_key if (k[0] == "v1") != (k[1] in (1, 2))]  # no API crossed


def test_a_rollout_among_v1_versions_routes_v1_callers_and_leaves_v2_callers_theirs(
    stack: MigrationStack,
) -> None:
    url = stack.replicas[0].url
    admin = f"{url}/admin/rollouts/{NAME}"
    split = {"strategy": "split", "weights": {"1": 50, "2": 50}, "key": "userId"}
    answer = httpx.put(admin, json=split, headers=AUTH, timeout=15)
    assert answer.status_code == 200, answer.text
    try:
        records = synthetic_records(40, seed=16)

        def split_seen() -> bool:  # every worker re-reads the rollout within rollout_refresh_s
            versions = {
                _post(url, f"/v1/models/{NAME}/predict", r).json()["version"] for r in records
            }
            return versions == {1, 2}

        wait_until(split_seen, 10, "v1 callers split between versions 1 and 2")
        for record in records[:10]:
            v2 = _post(url, f"/v2/models/{NAME}/predict", v2_features.from_v1(record))
            assert v2.status_code == 200, v2.text  # not a 503 for "no version of the rollout"
            assert v2.json()["version"] == 3
    finally:
        reset = httpx.put(admin, json={"strategy": "stable"}, headers=AUTH, timeout=15)
        assert reset.status_code == 200, reset.text


def _cli(stack: MigrationStack, replica: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "logic_service", "api", "--url", stack.replicas[replica].url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"TIERKIT_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
    )


def test_retiring_v1_waits_for_its_traffic_to_end_then_every_replica_answers_410(
    stack: MigrationStack,
) -> None:
    a, b = stack.replicas
    record = synthetic_records(1, seed=15)[0]
    v2_record = v2_features.from_v1(record)
    assert _post(b.url, f"/v1/models/{NAME}/predict", record).status_code == 200
    # replica a sees replica b's request through the shared log
    wait_until(lambda: a.apis()["v1"]["requests_in_window"] > 0, 10, "b's v1 request seen by a")

    refused = _cli(stack, 0, "retire", NAME, "v1", "--reason", "callers moved to v2")
    assert refused.returncode == 1, refused.stderr
    assert re.fullmatch(
        rf"error: HTTP 409: API v1 of model {NAME} had \d+ requests? within the last "
        rf"{WINDOW_S} s \(api_retire_window_s; the last at \S+\): it is retired only once "
        r"nothing has called it for that long\n",
        refused.stderr,
    ), refused.stderr
    assert _post(a.url, f"/v1/models/{NAME}/predict", record).status_code == 200  # still served

    # v2 callers go on while v1 falls silent for longer than the window
    quiet_since = time.monotonic()
    v2_statuses = []
    while time.monotonic() - quiet_since < WINDOW_S + 0.5:
        for replica in (a, b):
            v2_statuses.append(
                _post(replica.url, f"/v2/models/{NAME}/predict", v2_record).status_code
            )
    assert set(v2_statuses) == {200}

    done = _cli(stack, 0, "retire", NAME, "v1", "--reason", "callers moved to v2")
    assert done.returncode == 0, done.stderr
    assert re.search(r"v1 +/v1/models/migrating/predict: versions 1, 2; retired ", done.stdout)

    def gone_on_b() -> bool:
        return _post(b.url, f"/v1/models/{NAME}/predict", record).status_code == 410

    wait_until(gone_on_b, 5, "replica b to answer 410 for the retired v1")
    for replica in (a, b):
        for path in (f"/v1/models/{NAME}/predict", f"/v1/models/{NAME}/versions/2/predict"):
            gone = _post(replica.url, path, record)
            message = _error(gone, 410, "api_retired")
            assert message.endswith(f"(callers moved to v2); call /v2/models/{NAME}/predict")
            assert gone.headers["deprecation"] == V1_HEADERS["deprecation"]
        assert _post(replica.url, f"/v2/models/{NAME}/predict", v2_record).status_code == 200

    status = _cli(stack, 1, "status", NAME)
    assert status.returncode == 0, status.stderr
    assert "retired" in status.stdout.splitlines()[1] and "v2 " in status.stdout
