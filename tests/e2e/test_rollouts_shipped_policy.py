"""Rollouts on the stack exactly as ``./scripts/up`` ships it: ``latest { num_versions: 1 }``.

Issue 24: on the shipped policy, publishing V1 made the graph tier unload V0,
and a 10 % canary answered 400 of 400 requests with the candidate. Here the
runner (scripts/local_stack.py) starts with the project's own models.config
(only its base path points at this test's model repository; the policy is
checked to be the shipped one) and its defaults; each test publishes a new
version over the one serving, runs one strategy through its moves with keyed
traffic, and ends it: the graph tier then goes back to the user's policy and
the version no longer used unloads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import text_format
from support.ctr_versions import publish_version
from support.processes import ROOT
from support.waiting import wait_until
from tensorflow_serving.config import model_server_config_pb2

from logic_service.features import ctr
from logic_service.pinning.in_use import LAST_SERVABLE

from .local_stack_run import LocalStackRun, start_local_stack
from .stack import MODEL

TOKEN = "shipped-policy-admin-token"
FIRST_VERSION = 1_800_000_000
KEYED_REQUESTS = 400
SWITCH_WITHIN_S = 2.0  # rollback / switch back: all traffic on the old version by then
UNLOAD_WITHIN_S = 30.0  # the graph tier polls its config every 1 s, the keeper too


def shipped_models_config(target: Path, repo: Path) -> Path:
    """The project's models.config with only ``base_path`` moved to this test's repository."""
    config = text_format.Parse(
        (ROOT / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (entry,) = [e for e in config.model_config_list.config if e.name == MODEL]
    policy = entry.model_version_policy
    assert policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions == 1
    assert not entry.version_labels  # shipped without labels: nothing pins a version
    entry.base_path = str(repo / MODEL)
    target.write_text(text_format.MessageToString(config))
    return target


@dataclass
class ShippedStack:
    run: LocalStackRun
    repo: Path
    models_config: Path
    transformer: Any
    newest: int = FIRST_VERSION

    def events(self) -> list[dict[str, Any]]:
        answer = self.admin("GET")
        assert answer.status_code == 200, answer.text
        return answer.json()["events"]

    def versions_view(self) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.run.url}/admin/models/{MODEL}/versions",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def admin(self, method: str, path: str = "", body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.run.url}/admin/rollouts/{MODEL}{path}",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )

    def set(self, spec: dict[str, Any]) -> dict[str, Any]:
        answer = self.admin("PUT", body=spec)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def act(self, action: str) -> dict[str, Any]:
        answer = self.admin("POST", f"/{action}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def graph_available(self) -> list[int]:
        url = f"http://127.0.0.1:{self.run.graph_rest_port}/v1/models/{MODEL}"
        states = httpx.get(url, timeout=5).json()["model_version_status"]
        return sorted(int(s["version"]) for s in states if s["state"] == "AVAILABLE")

    def serving(self) -> list[int]:
        ready = httpx.get(f"{self.run.url}/readyz", timeout=5)
        return ready.json()["models"][MODEL]["ready_versions"] if ready.status_code == 200 else []

    def publish_next(self) -> tuple[int, int]:
        """Publish a newer version while the newest serves; (old, new) once the new one serves."""
        old, new = self.newest, self.newest + 1
        publish_version(self.repo, MODEL, new, self.transformer, seed=new % 1000)
        self.newest = new
        # The shipped policy keeps one version: the new one replaces the old one.
        wait_until(lambda: self.serving() == [new], 60, f"version {new} alone serving")
        return old, new

    def in_use(self) -> dict[int, list[str]]:
        view = self.versions_view()
        return {i["version"]: [u["why"] for u in i["uses"]] for i in view["in_use"]}

    def versions(self, count: int = KEYED_REQUESTS, first_user: int = 0) -> Counter[int]:
        """Which version answered each of ``count`` requests of distinct users."""
        seen: Counter[int] = Counter()
        with httpx.Client(timeout=15) as client:
            for user in range(first_user, first_user + count):
                answer = client.post(
                    f"{self.run.url}/v1/models/{MODEL}/predict",
                    json={**ctr.EXAMPLE_REQUEST, "userId": user},
                )
                assert answer.status_code == 200, answer.text
                seen[answer.json()["version"]] += 1
        return seen

    def all_on(self, version: int, within_s: float) -> float:
        """Seconds until 20 requests in a row (distinct users) answer from ``version``."""
        started = time.monotonic()
        user = 10_000
        while True:
            if set(self.versions(20, user)) == {version}:
                return time.monotonic() - started
            user += 20
            assert time.monotonic() - started < within_s, f"not all on {version} in {within_s} s"

    def end_and_release(self, kept: int, released: int) -> None:
        """End the rollout: the user's policy again, ``released`` unloads, ``kept`` serves."""
        self.set({"strategy": "stable", "reason": "rollout over"})
        wait_until(
            lambda: self.graph_available() == [kept],
            UNLOAD_WITHIN_S,
            f"version {released} unloaded by the shipped policy",
        )
        wait_until(lambda: self.serving() == [kept], 10, f"only {kept} routed")
        assert set(self.versions(40)) == {kept}
        # nothing of the rollout is held any more: only the last servable version (issue 29)
        assert self.in_use() == {kept: [LAST_SERVABLE]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, transformer: Any) -> Iterator[ShippedStack]:
    directory = tmp_path_factory.mktemp("shipped")
    repo = directory / "serving_models"
    publish_version(repo, MODEL, FIRST_VERSION, transformer, seed=1)
    models_config = shipped_models_config(directory / "models.config", repo)
    run = start_local_stack(
        repo,
        directory,
        "shipped",
        models_config=models_config,
        logic_settings=f"admin_token: {TOKEN}\n",
    )
    try:
        run.wait_for_banner(150)
        yield ShippedStack(run, repo, models_config, transformer)
    finally:
        code, _ = run.interrupt(timeout=60)
    assert code == 0, run.text()


def test_canary_on_the_shipped_policy_splits_promotes_rolls_back_and_ends(
    stack: ShippedStack,
) -> None:
    v0, v1 = stack.publish_next()
    spec = {"strategy": "canary", "baseline": v0, "candidate": v1, "stages": [10, 100]}
    stack.set(spec | {"dwell_s": 3600})
    assert stack.graph_available() == [v0, v1]

    counts = stack.versions()
    assert set(counts) == {v0, v1}, counts
    assert 0.04 * KEYED_REQUESTS <= counts[v1] <= 0.20 * KEYED_REQUESTS, counts

    assert stack.act("promote")["state"]["canary"]["stage"] == 1  # 100 %
    assert stack.versions(100) == Counter({v1: 100})
    assert stack.act("promote")["state"]["canary"]["status"] == "promoted"

    assert stack.act("rollback")["state"]["canary"]["status"] == "rolled_back"
    took = stack.all_on(v0, SWITCH_WITHIN_S)
    assert v1 in stack.graph_available()  # rolled back, still loaded for the next try
    print(f"canary: {counts[v1]} of {KEYED_REQUESTS} on the candidate; rollback took {took:.2f} s")

    stack.end_and_release(kept=v1, released=v0)


def test_split_90_10_on_the_shipped_policy(stack: ShippedStack) -> None:
    v0, v1 = stack.publish_next()
    stack.set({"strategy": "split", "weights": {v0: 90, v1: 10}, "salt": "shipped"})
    assert stack.graph_available() == [v0, v1]

    counts = stack.versions()
    assert set(counts) == {v0, v1}, counts
    assert 0.04 * KEYED_REQUESTS <= counts[v1] <= 0.20 * KEYED_REQUESTS, counts

    stack.set({"strategy": "split", "weights": {v0: 0, v1: 100}, "salt": "shipped"})
    assert stack.versions(100) == Counter({v1: 100})
    stack.set({"strategy": "split", "weights": {v0: 100, v1: 0}, "salt": "shipped"})
    took = stack.all_on(v0, SWITCH_WITHIN_S)
    assert v1 in stack.graph_available()
    print(f"split: {counts[v1]} of {KEYED_REQUESTS} on {v1}; back on {v0} in {took:.2f} s")

    stack.end_and_release(kept=v1, released=v0)


def test_blue_green_switch_on_the_shipped_policy(stack: ShippedStack) -> None:
    v0, v1 = stack.publish_next()
    stack.set({"strategy": "blue_green", "active": v0, "standby": v1})
    assert stack.graph_available() == [v0, v1]
    assert stack.versions(100) == Counter({v0: 100})

    assert stack.act("switch")["spec"]["active"] == str(v1)
    assert stack.versions(100) == Counter({v1: 100})
    assert stack.act("switch")["spec"]["active"] == str(v0)
    took = stack.all_on(v0, SWITCH_WITHIN_S)
    assert v1 in stack.graph_available()
    print(f"blue-green: back on {v0} in {took:.2f} s")

    stack.end_and_release(kept=v1, released=v0)


def _broken_version(repo: Path, version: int) -> Path:
    """A version folder the graph tier cannot load (its SavedModel is not one)."""
    folder = repo / MODEL / str(version)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    return folder


def test_rollout_set_names_what_it_cannot_use_and_changes_nothing(stack: ShippedStack) -> None:
    serving = stack.serving()
    before = stack.admin("GET").json()["revision"]
    unknown = stack.newest + 50
    refused = stack.admin("PUT", body={"strategy": "canary", "candidate": unknown})
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert f"canary candidate: version {unknown} of model {MODEL} is not published" in message
    assert f"published: [{FIRST_VERSION}" in message and f"loaded: {serving}" in message

    broken = _broken_version(stack.repo, FIRST_VERSION - 1)  # older: the policy never picks it
    try:
        spec = {"strategy": "split", "weights": {serving[0]: 90, broken.name: 10}}
        failed = stack.admin("PUT", body=spec)
        assert failed.status_code == 409, failed.text
        message = failed.json()["error"]["message"]
        assert f"version {broken.name} of model {MODEL} failed to load:" in message
        assert f"loaded: {serving}" in message and "nothing changed" in message
    finally:
        import shutil

        shutil.rmtree(broken)
    assert stack.admin("GET").json()["revision"] == before  # nothing stored
    # the keeper saw it too: it put back the last good graph config and said why
    failed = wait_until(
        lambda: [e for e in stack.events() if e["kind"] == "pin_failed"], 30, "pin_failed"
    )
    assert f"version {broken.name} of {MODEL} failed to load" in failed[-1]["reason"]
    assert "restored the last good graph config" in failed[-1]["reason"]
    view = stack.versions_view()
    assert view["pins"] == []  # the waiting pin is gone again; only what serves is held
    assert [[u["kind"] for u in i["uses"]] for i in view["in_use"]] == [["servable"]]
    wait_until(lambda: stack.graph_available() == serving, 30, "only the serving version")


def test_an_operator_pin_keeps_an_old_version_loaded_until_released(stack: ShippedStack) -> None:
    old, new = stack.publish_next()
    assert stack.graph_available() == [new]
    pinned = httpx.put(
        f"{stack.run.url}/admin/models/{MODEL}/pins/{old}",
        json={"reason": "compare offline"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    )
    assert pinned.status_code == 200, pinned.text
    assert stack.graph_available() == [old, new]
    (use,) = next(i for i in pinned.json()["in_use"] if i["version"] == old)["uses"]
    assert use == {"kind": "pin", "why": "pin by operator: compare offline"}
    assert set(stack.versions(40)) == {new}  # pinned is not routed: no rollout names it
    released = httpx.delete(
        f"{stack.run.url}/admin/models/{MODEL}/pins/{old}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert released.status_code == 200, released.text
    wait_until(lambda: stack.graph_available() == [new], UNLOAD_WITHIN_S, f"{old} unloaded")


def test_a_candidate_deleted_under_a_canary_is_reported_and_the_baseline_serves(
    stack: ShippedStack,
) -> None:
    """Last: it deletes the newest version."""
    import shutil

    v0, v1 = stack.publish_next()
    stack.set({"strategy": "canary", "baseline": v0, "candidate": v1, "stages": [50, 100]})
    assert set(stack.versions(100)) == {v0, v1}
    shutil.rmtree(stack.repo / MODEL / str(v1))

    def reported() -> list[dict[str, Any]]:
        return [e for e in stack.events() if e["kind"] == "version_missing"]

    (event,) = wait_until(reported, 30, "a version_missing event")
    assert f"canary candidate {v1}: not published" in event["reason"]
    wait_until(lambda: v1 not in stack.serving(), 10, f"{v1} no longer routed")
    assert stack.versions(100) == Counter({v0: 100})  # the baseline, never another version
    metrics = httpx.get(f"{stack.run.url}/metrics", timeout=10).text
    assert f'tierkit_rollout_missing_versions{{model="{MODEL}"}} 1.0' in metrics
    summary = httpx.get(f"{stack.run.url}/dashboard/api/summary", timeout=10).json()
    (warning,) = summary["models"][0]["rollout"]["warnings"]
    assert warning["version"] == v1 and "not published" in warning["message"]

    stack.set({"strategy": "stable"})
    wait_until(lambda: stack.serving() == [v0], UNLOAD_WITHIN_S, f"{v0} serving alone")
