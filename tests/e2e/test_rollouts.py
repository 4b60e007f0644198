"""Rollouts on both real tiers: split, canary rollback and promotion, blue-green, shadow, restart.

One graph tier and one logic tier for the module (``rollout_stack``); each test
sets the rollout it needs through the admin API, which also restarts a canary
at its first stage, so tests do not depend on each other's traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import text_format
from support.waiting import wait_until

from logic_service.features import ctr

from .rollout_stack import (
    NAME,
    PREDICT,
    RolloutStack,
    build_repo,
    start_graph,
    start_logic,
    write_logic_config,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, transformer: Any) -> Iterator[RolloutStack]:
    directory = tmp_path_factory.mktemp("rollouts")
    repo, models_config = build_repo(directory, transformer)
    graph, grpc_port = start_graph(directory, models_config)
    try:
        config, port = write_logic_config(directory, repo, grpc_port)
        logic, url = start_logic(directory, config, port)
        stack = RolloutStack(graph, logic, url, models_config, repo)
        stack.restart = lambda: start_logic(directory, config, port)  # type: ignore[attr-defined]
        yield stack
        stack.logic.stop()
    finally:
        graph.stop()


def _record(user: int) -> dict[str, Any]:
    return {**ctr.EXAMPLE_REQUEST, "userId": user}


def _predict(client: httpx.Client, stack: RolloutStack, user: int) -> httpx.Response:
    return client.post(stack.url + PREDICT, json=_record(user), timeout=15)


def _drive_until(stack: RolloutStack, done, limit_s: float, users: int = 10_000) -> list[int]:
    """Send traffic until ``done(rollout)`` holds; answers the status codes seen."""
    statuses: list[int] = []
    deadline = time.monotonic() + limit_s
    user = 0
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            for _ in range(10):
                statuses.append(_predict(client, stack, user % users).status_code)
                user += 1
            if done(stack.rollout()):
                return statuses
    raise AssertionError(f"rollout did not get there in {limit_s:.0f}s: {stack.rollout()}")


def test_admin_api_needs_the_token_and_names_bad_fields(stack: RolloutStack) -> None:
    url = f"{stack.url}/admin/rollouts/{NAME}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    bad = stack.admin("PUT", body={"strategy": "split", "weights": {"1": -3}})
    assert bad.status_code == 422 and "weights" in bad.json()["error"]["message"]
    missing = httpx.get(
        f"{stack.url}/admin/rollouts/nope", headers={"Authorization": "Bearer s3cret-admin-token"}
    )
    assert missing.status_code == 404
    logs = [stack.logic.log_path, *stack.logic.log_path.parent.glob("logs-rollouts/*.log")]
    assert len(logs) == 2 and all("s3cret" not in p.read_text(errors="replace") for p in logs)


def _cli(stack: RolloutStack, *args: str, token: str = "s3cret-admin-token"):
    env = os.environ | {"TIERKIT_ADMIN_URL": stack.url, "TIERKIT_ADMIN_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "logic_service", "rollout", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_sets_and_shows_a_rollout_through_the_admin_api(stack: RolloutStack) -> None:
    done = _cli(
        stack, "set", NAME, "--spec", '{"strategy": "blue_green", "active": 2, "standby": 1}'
    )
    assert done.returncode == 0, done.stderr
    assert "blue_green" in done.stdout and "active 2, standby 1" in done.stdout
    switched = _cli(stack, "switch", NAME, "--reason", "cli test")
    assert switched.returncode == 0 and "active 1, standby 2" in switched.stdout
    assert "cli test" in switched.stdout
    shown = _cli(stack, "--json", "status", NAME)
    assert json.loads(shown.stdout)["spec"]["active"] == "1"
    refused = _cli(stack, "set", NAME, "--spec", '{"strategy": "split"}')
    assert refused.returncode == 1 and "weights" in refused.stderr
    assert "Traceback" not in refused.stderr
    denied = _cli(stack, "status", NAME, token="wrong")
    assert denied.returncode == 1 and "401" in denied.stderr


def test_split_is_sticky_per_user_over_the_wire(stack: RolloutStack) -> None:
    stack.set({"strategy": "split", "weights": {"1": 50, "2": 50}, "salt": "e2e"})
    seen: dict[int, int] = {}
    with httpx.Client() as client:
        for user in list(range(60)) * 2:
            response = _predict(client, stack, user)
            assert response.status_code == 200, response.text
            version = response.json()["version"]
            assert seen.setdefault(user, version) == version
    counts = Counter(seen.values())
    assert set(counts) == {1, 2} and min(counts.values()) >= 15  # 60 users, 50/50: +-4 sigma


def test_split_by_version_labels_routes_to_the_labelled_versions(stack: RolloutStack) -> None:
    # models.config labels stable=1 and canary=2; the registry resolves both for this split
    stack.set({"strategy": "split", "weights": {"stable": 50, "canary": 50}, "salt": "labels"})
    seen: Counter[int] = Counter()

    def both_labels_serve() -> bool:
        with httpx.Client() as client:
            for user in range(40):
                response = _predict(client, stack, user)
                assert response.status_code == 200, response.text
                seen[response.json()["version"]] += 1
        return set(seen) == {1, 2}

    wait_until(both_labels_serve, 15, "answers from both labelled versions")
    assert set(seen) <= {1, 2}


@pytest.mark.parametrize(("candidate", "breach"), [(3, "error rate"), (4, "p99")])
def test_a_failing_canary_is_rolled_back_and_baseline_keeps_all_traffic(
    stack: RolloutStack, candidate: int, breach: str
) -> None:
    stack.set(
        {
            "strategy": "canary",
            "baseline": 1,
            "candidate": candidate,
            "stages": [50, 100],
            "dwell_s": 60,
            "guardrails": {"min_requests": 10, "max_p99_ratio": 3.0},
        }
    )
    _drive_until(stack, lambda r: r["state"]["canary"]["status"] == "rolled_back", 60)
    rollout = stack.rollout()
    assert rollout["events"][-1]["kind"] == "rollback"
    assert breach in rollout["events"][-1]["reason"]
    with httpx.Client() as client:
        answers = [_predict(client, stack, user) for user in range(40)]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.is_error]
    assert {a.json()["version"] for a in answers} == {1}


def test_a_healthy_canary_is_promoted_through_every_stage(stack: RolloutStack) -> None:
    stack.set(
        {
            "strategy": "canary",
            "baseline": 1,
            "candidate": 2,
            "stages": [20, 50, 100],
            "dwell_s": 1,
            "guardrails": {"min_requests": 5, "max_p99_ratio": 20.0},
        }
    )
    statuses = _drive_until(stack, lambda r: r["state"]["canary"]["status"] == "promoted", 60)
    assert set(statuses) == {200}
    kinds = [e["kind"] for e in stack.rollout()["events"]]
    assert kinds[-3:] == ["promote", "promote", "complete"]
    with httpx.Client() as client:
        assert {_predict(client, stack, u).json()["version"] for u in range(30)} == {2}


def _labels(config: Path) -> dict[str, int]:
    from tensorflow_serving.config import model_server_config_pb2

    parsed = text_format.Parse(config.read_text(), model_server_config_pb2.ModelServerConfig())
    return dict(parsed.model_config_list.config[0].version_labels)


def test_blue_green_switch_and_back_under_load_fails_no_request(stack: RolloutStack) -> None:
    stack.set(
        {
            "strategy": "blue_green",
            "active": 1,
            "standby": 2,
            "move_labels": True,
            "models_config": str(stack.models_config),
        }
    )
    answers: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            user = 0
            while not stop.is_set() and len(answers) < 5000:
                response = _predict(client, stack, user)
                version = response.json().get("version") if response.status_code == 200 else None
                answers.append((response.status_code, version))
                user += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_until(lambda: len(answers) > 20, 30, "load running")
        assert stack.admin("POST", "switch", {"reason": "release 2"}).status_code == 200
        assert _labels(stack.models_config) == {"stable": 2, "canary": 1}
        wait_until(lambda: answers[-1][1] == 2 and len(answers) > 60, 30, "traffic on 2")
        assert stack.admin("POST", "switch").status_code == 200
        assert _labels(stack.models_config) == {"stable": 1, "canary": 2}
        mark = len(answers)
        wait_until(lambda: len(answers) > mark + 40 and answers[-1][1] == 1, 30, "back on 1")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert [a for a in answers if a[0] != 200] == []
    versions = [v for _, v in answers]
    assert 2 in versions and versions[-1] == 1
    kinds = [e["kind"] for e in stack.rollout()["events"]]
    assert kinds[-2:] == ["switch", "switch"]


def test_shadow_answers_never_reach_the_caller(stack: RolloutStack) -> None:
    stack.set({"strategy": "blue_green", "active": 1, "standby": 2})
    with httpx.Client() as client:
        plain = {u: _predict(client, stack, u).json()["prediction"] for u in range(20)}
        stack.set({"strategy": "blue_green", "active": 1, "standby": 2, "shadow": {"target": 2}})
        for user in range(20):
            answer = _predict(client, stack, user).json()
            assert answer["version"] == 1 and answer["prediction"] == plain[user]

    def compared() -> list[dict]:
        shadow = stack.rollout()["shadow"]
        return shadow if shadow and shadow[0]["compared"] >= 20 else []

    summary = wait_until(compared, 30, "20 shadow comparisons")[0]
    assert (summary["primary"], summary["shadow"]) == (1, 2)
    assert summary["score_diff"]["mean"] != 0.0  # version 2 really ran, and differs
    assert 0.0 <= summary["agreement_rate"] <= 1.0 and summary["mean_shadow_ms"] > 0
    metrics = httpx.get(f"{stack.url}/metrics").text
    assert f'tierkit_shadow_requests_total{{model="{NAME}"' in metrics


def test_holdout_answers_some_positives_with_the_control_version(stack: RolloutStack) -> None:
    stack.set(
        {
            "strategy": "blue_green",
            "active": 1,
            "standby": 2,
            "holdout": {"control": 2, "share": 0.5, "threshold": -1.0},  # every score positive
        }
    )
    with httpx.Client() as client:
        first = {u: _predict(client, stack, u).json()["version"] for u in range(60)}
        again = {u: _predict(client, stack, u).json()["version"] for u in range(60)}
    assert first == again  # groups are sticky per user
    counts = Counter(first.values())
    assert set(counts) == {1, 2} and min(counts.values()) >= 15


def test_with_a_holdout_the_shadow_compares_the_primary_routes_version(
    stack: RolloutStack,
) -> None:
    """A control-group request is answered by the holdout's control, yet the shadow
    compares the version the rollout routed to (1) with its target (2), never the
    control's answer with itself ("2 -> 2")."""

    def pairs() -> dict[tuple[int, int], int]:
        return {(p["primary"], p["shadow"]): p["compared"] for p in stack.rollout()["shadow"]}

    before = pairs().get((1, 2), 0)
    stack.set(
        {
            "strategy": "blue_green",
            "active": 1,
            "standby": 2,
            "shadow": {"target": 2},
            "holdout": {"control": 2, "share": 1.0, "threshold": -1.0},  # all to the control
        }
    )
    with httpx.Client() as client:
        answered = {_predict(client, stack, u).json()["version"] for u in range(20)}
    assert answered == {2}  # the caller got the control's answer
    try:
        wait_until(lambda: pairs().get((1, 2), 0) >= before + 20, 30, "20 comparisons 1 -> 2")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; pairs compared: {pairs()}") from None
    assert [pair for pair in pairs() if pair[0] == pair[1]] == []


def test_rollout_state_survives_a_restart(stack: RolloutStack) -> None:
    before = stack.set({"strategy": "split", "weights": {"2": 1}})
    stack.logic.stop()
    stack.logic, stack.url = stack.restart()  # type: ignore[attr-defined]
    after = stack.rollout()
    assert (after["revision"], after["spec"]) == (before["revision"], before["spec"])
    with httpx.Client() as client:
        assert {_predict(client, stack, u).json()["version"] for u in range(20)} == {2}
