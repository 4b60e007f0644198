"""A publish never takes serving down: a broken version published under load (issue 29, finding 2).

Before: with the shipped ``latest { num_versions: 1 }`` policy the graph tier
loaded the new version and unloaded the one serving; the logic tier could not
load the new version's feature code, so every request answered 503 until the
folder was removed. Here the local stack runs as ``./scripts/up`` runs it (the
runner, the shipped policy, the keeper), version 1 serves with its feature code
travelling in the version, and version 2 is published with feature code that
cannot import in the logic tier while a client sends requests without pause:
not one may fail, version 1 keeps answering, and the refusal shows in
``/readyz``, the log, ``/metrics`` and the dashboard's feed. Then a good
version 3 is published: it takes over and the keeper releases version 1.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.ctr_artifacts import fitted_transformer
from support.ctr_versions import publish_version
from support.waiting import wait_until

from logic_service.features import ctr

from .local_stack_run import LocalStackRun, start_local_stack
from .stack import MODEL
from .test_rollouts_shipped_policy import shipped_models_config

CODE = Path(ctr.__file__).read_bytes()
# a module the exporting machine had and the logic tier's image lacks
BROKEN = CODE + b"\nimport lightgbm_that_the_logic_tier_lacks\n"
V1, V2, V3 = 1_800_100_000, 1_800_100_001, 1_800_100_002
AFTER_REFUSAL_S = 6.0  # keep the load on past the refusal: the graph tier's policy has acted


class Load:
    """Requests one after another from a thread; every answer's status and version."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/v1/models/{MODEL}/predict"
        self.answers: list[tuple[int, int | None, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            user = 0
            while not self._stop.is_set():
                user += 1
                try:
                    answer = client.post(self.url, json={**ctr.EXAMPLE_REQUEST, "userId": user})
                    body = answer.json()
                    self.answers.append(
                        (answer.status_code, body.get("version"), answer.text[:300])
                    )
                except httpx.HTTPError as exc:
                    self.answers.append((0, None, repr(exc)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def failures(self) -> list[tuple[int, int | None, str]]:
        return [a for a in self.answers if a[0] != 200]


@pytest.fixture(scope="module")
def transformer() -> Any:
    return fitted_transformer(seed=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, transformer: Any) -> Iterator[LocalStackRun]:
    directory = tmp_path_factory.mktemp("broken-publish")
    repo = directory / "serving_models"
    publish_version(
        repo, MODEL, V1, transformer, seed=1, code=CODE, example=ctr.EXAMPLE_REQUEST
    )
    run = start_local_stack(
        repo,
        directory,
        "broken",
        models_config=shipped_models_config(directory / "models.config", repo),
    )
    try:
        run.wait_for_banner(150)
        yield run
    finally:
        code, _ = run.interrupt(timeout=60)
    assert code == 0, run.text()


def _readyz(run: LocalStackRun) -> dict[str, Any]:
    answer = httpx.get(f"{run.url}/readyz", timeout=5)
    assert answer.status_code == 200, answer.text  # the model still serves: ready
    return answer.json()["models"][MODEL]


def _readyz_or_none(run: LocalStackRun) -> list[int] | None:
    answer = httpx.get(f"{run.url}/readyz", timeout=5)
    return answer.json()["models"][MODEL]["ready_versions"] if answer.status_code == 200 else None


def _graph_available(run: LocalStackRun) -> list[int]:
    url = f"http://127.0.0.1:{run.graph_rest_port}/v1/models/{MODEL}"
    states = httpx.get(url, timeout=5).json()["model_version_status"]
    return sorted(int(s["version"]) for s in states if s["state"] == "AVAILABLE")


def test_a_broken_feature_module_published_under_load_fails_no_request(
    stack: LocalStackRun, transformer: Any
) -> None:
    repo = stack.log_dir.parent / "serving_models"
    # version 1 serves, and the keeper holds it as the last servable version (the seed's
    # config already says "specific": the user's latest policy resolved, nothing held)
    wait_until(lambda: _readyz_or_none(stack) == [V1], 60, "version 1 ready")
    wait_until(
        lambda: "last servable" in (stack.log_dir / "logic.log").read_text(), 30, "1 held"
    )
    # and the graph tier has taken that config (it polls the file each second): until
    # then a version published replaces 1 under the user's latest policy (docs/rollouts.md)
    taken = f"Adding/updating models: {MODEL} <- {repo / MODEL} (specific)"
    graph_log = stack.log_dir / "graph.log"
    wait_until(lambda: taken in graph_log.read_text(), 30, "the graph tier holding 1")
    with Load(stack.url) as load:
        wait_until(lambda: len(load.answers) >= 20, 30, "the load running")
        assert load.failures() == [], load.failures()[:5]
        publish_version(
            repo, MODEL, V2, transformer, seed=2, code=BROKEN, example=ctr.EXAMPLE_REQUEST
        )
        wait_until(lambda: str(V2) in _readyz(stack)["failed"], 60, "version 2 refused")
        wait_until(lambda: V2 in _graph_available(stack), 60, "version 2 loaded in the graph")
        time.sleep(AFTER_REFUSAL_S)
        refused_at = len(load.answers)
    failures = load.failures()
    versions = Counter(version for status, version, _ in load.answers if status == 200)
    print(f"{len(load.answers)} requests during the broken publish: {dict(versions)}")
    assert failures == [], failures[:5]
    assert set(versions) == {V1}, versions
    assert refused_at >= 40, "too few requests to show anything"

    view = _readyz(stack)
    assert view["ready_versions"] == [V1]
    assert "importing the feature code failed: ModuleNotFoundError" in view["failed"][str(V2)]
    assert _graph_available(stack) == [V1, V2]  # 1 kept loaded: the last servable version
    metrics = httpx.get(f"{stack.url}/metrics", timeout=5).text
    assert f'tierkit_versions_refused{{model="{MODEL}"}} 1.0' in metrics
    feed = httpx.get(f"{stack.url}/dashboard/api/summary", timeout=30).json()
    (model,) = [m for m in feed["models"] if m["name"] == MODEL]
    assert str(V2) in model["failed"], model
    log = (stack.log_dir / "logic.log").read_text()
    assert f"model {MODEL}: version {V2} cannot be served" in log
    assert f"versions [{V1}] keep serving" in log

    # a good version takes over; the keeper then releases version 1 (and the broken 2)
    with Load(stack.url) as load:
        publish_version(
            repo, MODEL, V3, transformer, seed=3, code=CODE, example=ctr.EXAMPLE_REQUEST
        )
        wait_until(lambda: _readyz(stack)["ready_versions"][-1:] == [V3], 60, "version 3")
        wait_until(lambda: _graph_available(stack) == [V3], 60, "versions 1 and 2 unloaded")
    assert load.failures() == [], load.failures()[:5]
    assert {v for s, v, _ in load.answers} <= {V1, V3}
