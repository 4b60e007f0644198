"""The admin API's door: disabled without a token, 401 without the right one, clear 4xx."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.ports import free_port

from logic_service.app import create_app
from logic_service.services import services_of
from logic_service.settings import LogicSettings
from logic_service.settings.rollout import RolloutSpec

TOKEN = "t0ken-for-tests"


def _settings(tmp_path: Path, token: str | None) -> LogicSettings:
    port = free_port()  # nobody listens there: the admin API needs no graph tier
    return LogicSettings(
        graph={"grpc_address": f"127.0.0.1:{port}", "deadline_ms": 300},
        model_repository=tmp_path / "models",
        admin_token=token,
        storage={"database_url": f"sqlite:///{tmp_path / 'tierkit.db'}"},
    )


@pytest.fixture
def admin(tmp_path: Path):
    with TestClient(create_app(_settings(tmp_path, TOKEN), configure_logs=False)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def test_without_a_token_the_admin_api_is_disabled_and_says_how_to_enable(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, None), configure_logs=False)) as client:
        response = client.get("/admin/rollouts/ctr", headers={"Authorization": "Bearer x"})
    assert response.status_code == 403
    assert "TIERKIT_ADMIN_TOKEN" in response.json()["error"]["message"]


def test_wrong_or_missing_token_is_401(admin: TestClient) -> None:
    for header in ("", "Bearer nope", f"Basic {TOKEN}", TOKEN):
        response = admin.get("/admin/rollouts/ctr", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"] == "Bearer"


def test_set_refuses_versions_it_cannot_use_and_stores_nothing(
    admin: TestClient, tmp_path: Path
) -> None:
    spec = {"strategy": "canary", "baseline": 1, "candidate": 2, "stages": [10, 100]}
    unknown = admin.put("/admin/rollouts/ctr", json=spec)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["message"] == (
        "canary baseline: version 1 of model ctr is not published; canary candidate: "
        "version 2 of model ctr is not published (published: none; loaded: none)"
    )
    for version in (1, 2):  # published now, but no graph tier serves them
        (tmp_path / "models" / "ctr" / str(version)).mkdir(parents=True)
    idle = admin.put("/admin/rollouts/ctr", json=spec)
    assert idle.status_code == 409
    assert idle.json()["error"]["message"] == (
        "version 1, 2 of model ctr is published but not loaded by the graph tier, and this "
        "logic tier does not pin versions (graph_config.effective_file is unset) "
        "(published: [1, 2]; loaded: none)"
    )
    no_baseline = admin.put("/admin/rollouts/ctr", json={"strategy": "canary", "candidate": 2})
    assert no_baseline.status_code == 422
    assert "baseline: model ctr has no 'stable' label and no version serving" in (
        no_baseline.json()["error"]["message"]
    )
    assert admin.get("/admin/rollouts/ctr").json()["revision"] == 0  # nothing stored
    versions = admin.get("/admin/models/ctr/versions").json()
    assert (versions["published"], versions["in_use"], versions["pins"]) == ([1, 2], [], [])
    assert versions["pinning"] is False
    pin = admin.put("/admin/models/ctr/pins/7")
    assert pin.status_code == 422 and "7 of model ctr is not published" in pin.text


def test_set_read_and_act(admin: TestClient) -> None:
    initial = admin.get("/admin/rollouts/ctr").json()
    assert (initial["spec"]["strategy"], initial["revision"]) == ("stable", 0)
    # Stored directly: PUT checks the versions against a graph tier (the test above, e2e).
    spec = RolloutSpec(strategy="canary", candidate="2", stages=[10, 100])
    services_of(admin.app).rollouts.put("ctr", spec, "try 2")
    answer = admin.get("/admin/rollouts/ctr").json()
    assert answer["state"]["canary"]["stage"] == 0 and answer["spec"]["candidate"] == "2"
    assert answer["events"][-1] == {**answer["events"][-1], "kind": "set", "reason": "try 2"}
    assert [w["role"] for w in answer["warnings"]] == ["canary baseline", "canary candidate"]
    promoted = admin.post("/admin/rollouts/ctr/promote", json={"reason": "looks fine"}).json()
    assert promoted["state"]["canary"]["stage"] == 1
    rolled = admin.post("/admin/rollouts/ctr/rollback").json()
    assert rolled["state"]["canary"]["status"] == "rolled_back"
    conflict = admin.post("/admin/rollouts/ctr/switch")
    assert conflict.status_code == 409 and "blue_green" in conflict.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"strategy": "split", "weights": {"1": -1}}, 422, "weights"),
        ({"strategy": "canary", "candidate": 2, "dwell_s": 0}, 422, "dwell_s"),
        ({"strategy": "teleport"}, 422, "strategy"),
        ([1, 2], 422, "JSON object"),
    ],
)
def test_bad_rollouts_are_refused_naming_the_field(
    admin: TestClient, body: object, status: int, words: str
) -> None:
    response = admin.put("/admin/rollouts/ctr", json=body)
    assert response.status_code == status
    assert words in response.json()["error"]["message"]
    assert admin.get("/admin/rollouts/ctr").json()["revision"] == 0  # nothing stored


def test_unknown_model_and_bad_json(admin: TestClient) -> None:
    assert admin.get("/admin/rollouts/nope").status_code == 404
    response = admin.put(
        "/admin/rollouts/ctr", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
